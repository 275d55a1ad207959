"""Registering our participants in an SML.

* :class:`LocalSml` publishes the U-NAPTR records itself in a DNS server that accepts
  TSIG-signed RFC 2136 updates (Knot, BIND): a local network then behaves like the real one.
* :class:`SmlManagementClient` calls the Peppol SML management interface
  (``ManageBusinessIdentifier`` SOAP 1.1, mutual TLS with the SMP certificate).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import date
from typing import Protocol

import aiohttp
import dns.asyncquery
import dns.exception
import dns.name
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
from lxml import etree

from smp._errors import DiscoveryError
from smp._identifiers import ParticipantId
from smp._metadata import parse_xml
from smp._schemes import registration_problem, utc_today
from smp._sml import dns_name, resolve_zone

__all__ = ["LocalSml", "RegistrationError", "SmlManagementClient", "SmlRegistrar"]


class RegistrationError(DiscoveryError):
    """The SML refused or did not answer a registration change."""


class SmlRegistrar(Protocol):
    async def register(self, participant: ParticipantId) -> None: ...

    async def unregister(self, participant: ParticipantId) -> None: ...


def check_registrable(participant: ParticipantId, today: date) -> None:
    """Refuse, before asking the SML, a participant whose scheme is removed (or not registrable)
    on ``today``: it may have been valid when it was stored."""
    problem = registration_problem(participant.icd, today)
    if problem:
        raise RegistrationError(f"cannot register {participant}: {problem}")


def naptr_text(smp_url: str) -> str:
    """The record data the SML publishes for an SMP URL."""
    return f'100 10 "U" "Meta:SMP" "!^.*$!{smp_url.rstrip("/")}!" .'


class LocalSml:
    """Publish NAPTR records with TSIG-signed dynamic updates (RFC 2136)."""

    def __init__(
        self,
        zone: str,
        server: str,
        smp_url: str,
        *,
        key_name: str,
        key_secret: str,
        algorithm: str = "hmac-sha256",
        ttl: int = 60,
        timeout: float = 5.0,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self.zone = resolve_zone(zone)
        host, _, port = server.rpartition(":")
        self.host, self.port = host, int(port)
        self.smp_url = smp_url
        self.keyring = dns.tsigkeyring.from_text({key_name: (algorithm, key_secret)})
        self.key_name = key_name
        self.algorithm = dns.tsig.HMAC_SHA256 if algorithm == "hmac-sha256" else algorithm
        self.ttl = ttl
        self.timeout = timeout
        self.today = today

    async def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        try:
            response = await dns.asyncquery.tcp(update, self.host, port=self.port, timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as exc:
            raise RegistrationError(f"{what}: DNS update failed: {type(exc).__name__}: {exc}") from None
        if response.rcode() != dns.rcode.NOERROR:
            raise RegistrationError(f"{what}: DNS server answered {dns.rcode.to_text(response.rcode())}")

    def _update(self) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(
            self.zone + ".",
            keyring=self.keyring,
            keyname=dns.name.from_text(self.key_name),
            keyalgorithm=self.algorithm,
        )

    async def register(self, participant: ParticipantId) -> None:
        check_registrable(participant, self.today())
        update = self._update()
        update.replace(dns_name(participant, self.zone) + ".", self.ttl, "NAPTR", naptr_text(self.smp_url))
        await self._send(update, f"register {participant}")

    async def unregister(self, participant: ParticipantId) -> None:
        update = self._update()
        update.delete(dns_name(participant, self.zone) + ".", "NAPTR")
        await self._send(update, f"unregister {participant}")


_LRS = "http://busdox.org/serviceMetadata/locator/1.0/"
_IDS = "http://busdox.org/transport/identifiers/1.0/"
_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
# The service's WSDL has nine blanks before the operation name; the SML expects them.
_ACTION = "http://busdox.org/serviceMetadata/ManageBusinessIdentifierService/1.0/         :"


def participant_request(operation: str, smp_id: str, participant: ParticipantId) -> bytes:
    """The SOAP 1.1 body of CreateParticipantIdentifier / DeleteParticipantIdentifier."""
    envelope = etree.Element(f"{{{_SOAP11}}}Envelope", nsmap={"soap": _SOAP11})
    body = etree.SubElement(envelope, f"{{{_SOAP11}}}Body")
    op = etree.SubElement(body, f"{{{_LRS}}}{operation}", nsmap={"lrs": _LRS, "ids": _IDS})
    etree.SubElement(op, f"{{{_LRS}}}ServiceMetadataPublisherID").text = smp_id
    pid = etree.SubElement(op, f"{{{_IDS}}}ParticipantIdentifier", {"scheme": participant.scheme})
    pid.text = participant.value
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


class SmlManagementClient:
    """The Peppol SML's ManageBusinessIdentifier service, over mutual TLS."""

    def __init__(
        self,
        base_url: str,
        smp_id: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self.today = today
        self.url = base_url.rstrip("/") + "/manageparticipantidentifier"
        self.smp_id = smp_id
        self.ssl_context = ssl_context
        self.timeout = timeout

    async def _call(self, operation: str, action: str, participant: ParticipantId) -> None:
        body = participant_request(operation, self.smp_id, participant)
        headers = {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": f'"{_ACTION}{action}"'}
        try:
            async with aiohttp.ClientSession() as session, session.post(
                self.url, data=body, headers=headers, ssl=self.ssl_context or True,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:  # fmt: skip
                answer = await response.content.read(1024 * 1024)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = RegistrationError(f"SML {self.url} unreachable: {type(exc).__name__}: {exc}")
            error.retryable = True
            raise error from None
        if status == 200:
            return
        raise RegistrationError(f"SML {operation} failed (HTTP {status}): {_fault_text(answer)}")

    async def register(self, participant: ParticipantId) -> None:
        check_registrable(participant, self.today())
        await self._call("CreateParticipantIdentifier", "createIn", participant)

    async def unregister(self, participant: ParticipantId) -> None:
        await self._call("DeleteParticipantIdentifier", "deleteIn", participant)


def _fault_text(answer: bytes) -> str:
    try:
        root = parse_xml(answer)
    except DiscoveryError:
        return answer[:200].decode("utf-8", "replace")
    message = root.findtext(f".//{{{_LRS}}}FaultMessage") or root.findtext(".//faultstring") or ""
    return message.strip() or "SOAP fault without a message"
