"""Registering our participants in an SML.

* :class:`LocalSml` publishes the U-NAPTR records itself in a DNS server that accepts
  TSIG-signed RFC 2136 updates (Knot, BIND): a local network then behaves like the real one.
* :class:`~smp.SmlManagementClient` (in ``_management``) calls the Peppol SML's management
  interface. Both are an :class:`SmlRegistrar`: directory code does not care which it has.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Protocol

import dns.asyncquery
import dns.exception
import dns.name
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update

from smp._errors import DiscoveryError
from smp._identifiers import ParticipantId
from smp._schemes import registration_problem, utc_today
from smp._sml import dns_name, resolve_zone

__all__ = ["LocalSml", "RegistrationError", "SmlRegistrar", "check_registrable"]


class RegistrationError(DiscoveryError):
    """The SML refused or did not answer a registration change.

    ``permanent`` marks a refusal decided before asking the SML that no retry can change."""

    permanent = False


class SmlRegistrar(Protocol):
    """Publishes our participants in an SML (a local DNS zone or the Peppol SML)."""

    async def register(self, participant: ParticipantId) -> None: ...

    async def unregister(self, participant: ParticipantId) -> None: ...


def check_registrable(participant: ParticipantId, today: date) -> None:
    """Refuse, before asking the SML, a participant whose scheme is removed (or not registrable)
    on ``today``: it may have been valid when it was stored."""
    problem = registration_problem(participant.icd, today)
    if problem:
        error = RegistrationError(f"cannot register {participant}: {problem}")
        error.permanent = True
        raise error


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
