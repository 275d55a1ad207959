"""The Peppol SML's management interface, as our SMP uses it.

Three SOAP 1.1 services under the SML's base URL, all over mutual TLS with the SMP certificate:

* ``/manageservicemetadata``: our SMP's own record (its logical and physical address);
* ``/manageparticipantidentifier`` (ManageBusinessIdentifier): one record per participant,
  listing them, and moving a participant between SMPs (PrepareToMigrate / Migrate);
* ``/bdmslservice``: the BDMSL extension, here PrepareChangeCertificate.

Sans-IO like the rest of the package: each operation is a :class:`SoapCall` built by a plain
function, each answer read by a plain parser (both tested without a network);
:class:`SmlManagementClient` sends them with aiohttp. A SOAP fault becomes an :class:`SmlFault`
carrying the SML's own text (``[ERR-100] The SMP 'X' doesn't exist.``).
"""

from __future__ import annotations

import re
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import aiohttp
from lxml import etree

from smp._errors import DiscoveryError
from smp._identifiers import PARTICIPANT_SCHEME, IdentifierError, ParticipantId
from smp._metadata import parse_xml
from smp._registration import RegistrationError, check_registrable
from smp._schemes import utc_today
from smp._sml import MalformedRecord, check_smp_url

__all__ = [
    "MIGRATION_KEY_SPECIALS",
    "ParticipantPage",
    "SmlFault",
    "SmlManagementClient",
    "SmpRecord",
    "SoapCall",
    "change_certificate_call",
    "check_migration_key",
    "client_tls_context",
    "logical_address",
    "migration_call",
    "new_migration_key",
    "page_call",
    "parse_fault",
    "parse_participant_page",
    "parse_smp_record",
    "participant_call",
    "smp_call",
    "smp_id_call",
]

LRS = "http://busdox.org/serviceMetadata/locator/1.0/"
IDS = "http://busdox.org/transport/identifiers/1.0/"
BDMSL_DATA = "ec:services:wsdl:BDMSL:data:1.0"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"

SMP_SERVICE = "manageservicemetadata"
PARTICIPANT_SERVICE = "manageparticipantidentifier"
BDMSL_SERVICE = "bdmslservice"

_SMP_ACTION = "http://busdox.org/serviceMetadata/ManageServiceMetadataService/1.0/:"
# The ManageBusinessIdentifier WSDL has nine blanks before the operation name; the SML expects them.
_PARTICIPANT_ACTION = "http://busdox.org/serviceMetadata/ManageBusinessIdentifierService/1.0/         :"
_BDMSL_ACTION = "ec:services:wsdl:BDMSL:1.0:"

FAULT_KINDS = ("NotFoundFault", "UnauthorizedFault", "BadRequestFault", "InternalErrorFault")
MIGRATION_KEY_SPECIALS = "@#$%()[]{}*^-!~|+="
_MAX_ANSWER = 4 * 1024 * 1024


class SmlFault(RegistrationError):
    """The SML answered a management call with a fault (or not with SOAP at all).

    ``kind`` is the fault's detail element (``NotFoundFault``, ``UnauthorizedFault``,
    ``BadRequestFault``, ``InternalErrorFault``) or None; ``fault`` the SML's own text."""

    def __init__(self, operation: str, fault: str, *, kind: str | None = None, status: int | None = None) -> None:
        super().__init__(f"SML {operation} refused: {fault}")
        self.operation = operation
        self.fault = fault
        self.kind = kind
        self.status = status
        # An internal error or an answer that is no SOAP fault (a proxy, an outage) may pass.
        self.retryable = kind == "InternalErrorFault" or (kind is None and (status or 500) >= 500)


@dataclass(frozen=True)
class SoapCall:
    """One SOAP 1.1 request: the service path under the SML's base URL, SOAPAction and body."""

    operation: str
    service: str
    action: str
    body: bytes


@dataclass(frozen=True)
class SmpRecord:
    """What the SML holds for an SMP."""

    smp_id: str
    logical_address: str
    physical_address: str


@dataclass(frozen=True)
class ParticipantPage:
    participants: list[ParticipantId]
    next_page: str | None


# -- requests ----------------------------------------------------------------------------------


def _envelope(element: str, namespace: str = LRS) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soap": SOAP11})
    body = etree.SubElement(envelope, f"{{{SOAP11}}}Body")
    nsmap = {"lrs": LRS, "ids": IDS} if namespace == LRS else {"bdmsl": namespace}
    return envelope, etree.SubElement(body, f"{{{namespace}}}{element}", nsmap=nsmap)


def _bytes(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _participant(parent: etree._Element, participant: ParticipantId) -> None:
    etree.SubElement(parent, f"{{{IDS}}}ParticipantIdentifier", {"scheme": participant.scheme}).text = participant.value


def _smp_id(parent: etree._Element, smp_id: str) -> None:
    etree.SubElement(parent, f"{{{LRS}}}ServiceMetadataPublisherID").text = smp_id


_SMP_OPERATIONS = {"create": "CreateServiceMetadataPublisherService", "update": "UpdateServiceMetadataPublisherService"}


def smp_call(operation: str, smp_id: str, logical: str, physical: str) -> SoapCall:
    """ManageServiceMetadata ``create`` or ``update``: the SMP's addresses, then its id."""
    envelope, op = _envelope(_SMP_OPERATIONS[operation])
    endpoint = etree.SubElement(op, f"{{{LRS}}}PublisherEndpoint")
    etree.SubElement(endpoint, f"{{{LRS}}}LogicalAddress").text = logical
    etree.SubElement(endpoint, f"{{{LRS}}}PhysicalAddress").text = physical
    _smp_id(op, smp_id)
    return SoapCall(operation, SMP_SERVICE, f"{_SMP_ACTION}{operation}In", _bytes(envelope))


def smp_id_call(operation: str, smp_id: str) -> SoapCall:
    """ManageServiceMetadata ``read`` (the id in ReadServiceMetadataPublisherService) or
    ``delete`` (the bare ServiceMetadataPublisherID element)."""
    if operation == "read":
        envelope, op = _envelope("ReadServiceMetadataPublisherService")
        _smp_id(op, smp_id)
    elif operation == "delete":
        envelope, op = _envelope("ServiceMetadataPublisherID")
        op.text = smp_id
    else:
        raise ValueError(operation)
    return SoapCall(operation, SMP_SERVICE, f"{_SMP_ACTION}{operation}In", _bytes(envelope))


_PARTICIPANT_OPERATIONS = {"create": "CreateParticipantIdentifier", "delete": "DeleteParticipantIdentifier"}


def participant_call(operation: str, smp_id: str, participant: ParticipantId) -> SoapCall:
    """ManageBusinessIdentifier ``create`` or ``delete`` of one participant."""
    envelope, op = _envelope(_PARTICIPANT_OPERATIONS[operation])
    _smp_id(op, smp_id)
    _participant(op, participant)
    return SoapCall(operation, PARTICIPANT_SERVICE, f"{_PARTICIPANT_ACTION}{operation}In", _bytes(envelope))


def page_call(smp_id: str, next_page: str | None = None) -> SoapCall:
    """ManageBusinessIdentifier ``list``: one page of our participants."""
    envelope, op = _envelope("PageRequest")
    _smp_id(op, smp_id)
    if next_page:
        etree.SubElement(op, f"{{{LRS}}}NextPageIdentifier").text = next_page
    return SoapCall("list", PARTICIPANT_SERVICE, f"{_PARTICIPANT_ACTION}listIn", _bytes(envelope))


_MIGRATION_OPERATIONS = {"prepareMigrate": "PrepareMigrationRecord", "migrate": "CompleteMigrationRecord"}


def migration_call(operation: str, smp_id: str, participant: ParticipantId, key: str) -> SoapCall:
    """``prepareMigrate`` (the current SMP announces the key) or ``migrate`` (the new SMP
    takes the participant over with the same key)."""
    envelope, op = _envelope(_MIGRATION_OPERATIONS[operation])
    _smp_id(op, smp_id)
    _participant(op, participant)
    etree.SubElement(op, f"{{{LRS}}}MigrationKey").text = check_migration_key(key)
    return SoapCall(operation, PARTICIPANT_SERVICE, f"{_PARTICIPANT_ACTION}{operation}In", _bytes(envelope))


def change_certificate_call(certificate_pem: str, migration_date: date | None) -> SoapCall:
    """BDMSL PrepareChangeCertificate: the SMP's next certificate (PEM) and the day it takes over."""
    envelope, op = _envelope("PrepareChangeCertificate", BDMSL_DATA)
    etree.SubElement(op, f"{{{BDMSL_DATA}}}newCertificatePublicKey").text = certificate_pem.strip()
    if migration_date is not None:
        etree.SubElement(op, f"{{{BDMSL_DATA}}}migrationDate").text = migration_date.isoformat()
    return SoapCall("prepareChangeCertificate", BDMSL_SERVICE, f"{_BDMSL_ACTION}prepareChangeCertificateIn",
                    _bytes(envelope))  # fmt: skip


# -- rules -------------------------------------------------------------------------------------


def logical_address(smp_url: str, zone: str) -> str:
    """The SMP URL as the SML publishes it: ``https`` only in the Peppol zones, no user info,
    query or fragment, no trailing slash."""
    try:
        return check_smp_url(smp_url, zone)
    except MalformedRecord as exc:
        raise RegistrationError(str(exc)) from None


def check_migration_key(key: str) -> str:
    """The SML 1.3.0 rules: 8 to 24 characters, at least two each of lower case, upper case,
    digits and ``@#$%()[]{}*^-!~|+=``, nothing else (no whitespace)."""
    problems = []
    if not 8 <= len(key) <= 24:
        problems.append("8 to 24 characters")
    for what, test in (
        ("lower case letters", str.islower),
        ("upper case letters", str.isupper),
        ("digits", str.isdigit),
        ("of " + MIGRATION_KEY_SPECIALS, lambda c: c in MIGRATION_KEY_SPECIALS),
    ):
        if sum(1 for c in key if c.isascii() and test(c)) < 2:
            problems.append(f"at least two {what}")
    if re.search(rf"[^a-zA-Z0-9{re.escape(MIGRATION_KEY_SPECIALS)}]", key):
        problems.append("only letters, digits and " + MIGRATION_KEY_SPECIALS)
    if problems:
        raise RegistrationError(f"migration key must have {', '.join(problems)}")
    return key


def new_migration_key(length: int = 16) -> str:
    """A random key that satisfies :func:`check_migration_key`."""
    if not 8 <= length <= 24:
        raise ValueError("a migration key has 8 to 24 characters")
    pools = ("abcdefghijkmnopqrstuvwxyz", "ABCDEFGHJKLMNPQRSTUVWXYZ", "23456789", MIGRATION_KEY_SPECIALS)
    chars = [secrets.choice(pool) for pool in pools for _ in range(2)]
    everything = "".join(pools)
    chars += [secrets.choice(everything) for _ in range(length - len(chars))]
    order = sorted(range(len(chars)), key=lambda _: secrets.randbits(32))
    return check_migration_key("".join(chars[i] for i in order))


# -- answers -----------------------------------------------------------------------------------


def parse_fault(operation: str, answer: bytes, status: int) -> SmlFault:
    """The SmlFault an unsuccessful answer stands for: the detail's FaultMessage when there is
    one, else the faultstring, else the start of the body."""
    try:
        root = parse_xml(answer)
    except DiscoveryError:
        text = answer[:300].decode("utf-8", "replace").strip() or "no answer body"
        return SmlFault(operation, f"HTTP {status}: {text}", status=status)
    fault = root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    if fault is None:
        return SmlFault(operation, f"HTTP {status} without a SOAP fault", status=status)
    kind = None
    message = ""
    detail = fault.find("detail")
    if detail is not None and len(detail):
        first = detail[0]
        kind = etree.QName(first).localname if isinstance(first.tag, str) else None
        message = (first.findtext(f"{{{LRS}}}FaultMessage") or first.findtext("FaultMessage") or "").strip()
    if not message:
        message = (fault.findtext("faultstring") or "").strip() or "SOAP fault without a message"
    return SmlFault(operation, message, kind=kind, status=status)


def _body_child(answer: bytes, operation: str) -> etree._Element | None:
    try:
        root = parse_xml(answer)
    except DiscoveryError as exc:
        raise SmlFault(operation, f"unreadable answer: {exc}") from None
    body = root.find(f"{{{SOAP11}}}Body")
    if body is None:
        raise SmlFault(operation, "the answer is no SOAP 1.1 envelope")
    return body[0] if len(body) else None


def parse_smp_record(answer: bytes) -> SmpRecord:
    """The ServiceMetadataPublisherService a ``read`` answers with."""
    element = _body_child(answer, "read")
    if element is None or element.tag != f"{{{LRS}}}ServiceMetadataPublisherService":
        raise SmlFault("read", "the answer holds no ServiceMetadataPublisherService")
    return SmpRecord(
        smp_id=(element.findtext(f"{{{LRS}}}ServiceMetadataPublisherID") or "").strip(),
        logical_address=(element.findtext(f"{{{LRS}}}PublisherEndpoint/{{{LRS}}}LogicalAddress") or "").strip(),
        physical_address=(element.findtext(f"{{{LRS}}}PublisherEndpoint/{{{LRS}}}PhysicalAddress") or "").strip(),
    )


def parse_participant_page(answer: bytes) -> ParticipantPage:
    """The ParticipantIdentifierPage a ``list`` answers with (an identifier that is no valid
    Peppol participant id is skipped)."""
    element = _body_child(answer, "list")
    if element is None or element.tag != f"{{{LRS}}}ParticipantIdentifierPage":
        raise SmlFault("list", "the answer holds no ParticipantIdentifierPage")
    participants = []
    for pid in element.iter(f"{{{IDS}}}ParticipantIdentifier"):
        scheme, value = pid.get("scheme", PARTICIPANT_SCHEME), (pid.text or "").strip()
        try:
            participants.append(ParticipantId.of(scheme, value))
        except IdentifierError:
            continue
    next_page = (element.findtext(f"{{{LRS}}}NextPageIdentifier") or "").strip() or None
    return ParticipantPage(participants, next_page)


# -- transport ---------------------------------------------------------------------------------


def client_tls_context(cert: Path, key: Path, trust: Path | None = None) -> ssl.SSLContext:
    """Mutual TLS towards the SML: our SMP key and certificate, the SML's server certificate
    checked against ``trust`` (a CA file) or the system store."""
    context = ssl.create_default_context(cafile=str(trust) if trust else None)
    context.load_cert_chain(str(cert), str(key))
    return context


class SmlManagementClient:
    """Our SMP's side of the SML management interface. ``register``/``unregister`` make it an
    :class:`~smp.SmlRegistrar` like :class:`~smp.LocalSml`."""

    def __init__(
        self,
        base_url: str,
        smp_id: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.smp_id = smp_id
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.today = today

    @property
    def url(self) -> str:
        """The participant service (kept for callers that printed it)."""
        return f"{self.base_url}/{PARTICIPANT_SERVICE}"

    async def send(self, call: SoapCall) -> bytes:
        """POST the call; the answer body on HTTP 200, else its :class:`SmlFault`."""
        url = f"{self.base_url}/{call.service}"
        headers = {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": f'"{call.action}"'}
        try:
            async with aiohttp.ClientSession() as session, session.post(
                url, data=call.body, headers=headers, ssl=self.ssl_context or True,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:  # fmt: skip
                answer = await response.content.read(_MAX_ANSWER)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = RegistrationError(f"SML {url} unreachable: {type(exc).__name__}: {exc}")
            error.retryable = True
            raise error from None
        if status != 200:
            raise parse_fault(call.operation, answer, status)
        return answer

    # ManageServiceMetadata: our SMP itself

    async def create_smp(self, logical: str, physical: str) -> None:
        await self.send(smp_call("create", self.smp_id, logical, physical))

    async def update_smp(self, logical: str, physical: str) -> None:
        await self.send(smp_call("update", self.smp_id, logical, physical))

    async def read_smp(self) -> SmpRecord | None:
        """Our SMP's record, or None when the SML does not know our SMP id."""
        try:
            return parse_smp_record(await self.send(smp_id_call("read", self.smp_id)))
        except SmlFault as fault:
            if fault.kind == "NotFoundFault":
                return None
            raise

    async def delete_smp(self) -> None:
        await self.send(smp_id_call("delete", self.smp_id))

    async def save_smp(self, logical: str, physical: str) -> str:
        """Create our SMP record, or update it when it exists; returns which was done."""
        current = await self.read_smp()
        if current is None:
            await self.create_smp(logical, physical)
            return "created"
        if (current.logical_address, current.physical_address) == (logical, physical):
            return "unchanged"
        await self.update_smp(logical, physical)
        return "updated"

    # ManageBusinessIdentifier: our participants

    async def register(self, participant: ParticipantId) -> None:
        check_registrable(participant, self.today())
        await self.send(participant_call("create", self.smp_id, participant))

    async def unregister(self, participant: ParticipantId) -> None:
        """Delete the participant's record; one the SML does not have is gone already."""
        try:
            await self.send(participant_call("delete", self.smp_id, participant))
        except SmlFault as fault:
            if fault.kind != "NotFoundFault":
                raise

    async def list_participants(self, max_pages: int = 1000) -> list[ParticipantId]:
        """Every participant the SML holds for our SMP, all pages."""
        found: list[ParticipantId] = []
        next_page: str | None = None
        for _ in range(max_pages):
            page = parse_participant_page(await self.send(page_call(self.smp_id, next_page)))
            found += page.participants
            if not page.next_page or page.next_page == next_page:
                break
            next_page = page.next_page
        return found

    async def prepare_migration(self, participant: ParticipantId, key: str) -> None:
        """Let another SMP take the participant over with ``key`` (we still serve it until then)."""
        await self.send(migration_call("prepareMigrate", self.smp_id, participant, key))

    async def migrate(self, participant: ParticipantId, key: str) -> None:
        """Take over a participant whose current SMP announced ``key``."""
        check_registrable(participant, self.today())
        await self.send(migration_call("migrate", self.smp_id, participant, key))

    # BDMSL

    async def prepare_change_certificate(self, certificate_pem: str, migration_date: date | None) -> None:
        """Announce the SMP's next certificate; the SML accepts it from ``migration_date`` on."""
        await self.send(change_certificate_call(certificate_pem, migration_date))
