"""An SML of our own, shaped like the BDMSL the Peppol SML runs: SOAP 1.1 on loopback over
mutual TLS, accepting only client certificates issued by the development SMP CA.

It keeps its state in memory: SMP records (each owned by the certificate that created it),
participant records, migration records and announced certificate changes. Every request is
checked against the SOAPAction its body element needs; refusals are SOAP faults in the SML's
shapes (``NotFoundFault``, ``UnauthorizedFault``, ``BadRequestFault`` with a ``FaultMessage``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from lxml import etree

from gateway.dev.pki import DevPki, Issued, issue, name
from smp import check_migration_key

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
LRS = "http://busdox.org/serviceMetadata/locator/1.0/"
IDS = "http://busdox.org/transport/identifiers/1.0/"
BDMSL = "ec:services:wsdl:BDMSL:data:1.0"
SMP_ACTION = "http://busdox.org/serviceMetadata/ManageServiceMetadataService/1.0/:"
PARTICIPANT_ACTION = "http://busdox.org/serviceMetadata/ManageBusinessIdentifierService/1.0/         :"

# body element -> (service path, SOAPAction)
OPERATIONS = {
    f"{{{LRS}}}CreateServiceMetadataPublisherService": ("manageservicemetadata", SMP_ACTION + "createIn"),
    f"{{{LRS}}}ReadServiceMetadataPublisherService": ("manageservicemetadata", SMP_ACTION + "readIn"),
    f"{{{LRS}}}UpdateServiceMetadataPublisherService": ("manageservicemetadata", SMP_ACTION + "updateIn"),
    f"{{{LRS}}}ServiceMetadataPublisherID": ("manageservicemetadata", SMP_ACTION + "deleteIn"),
    f"{{{LRS}}}CreateParticipantIdentifier": ("manageparticipantidentifier", PARTICIPANT_ACTION + "createIn"),
    f"{{{LRS}}}DeleteParticipantIdentifier": ("manageparticipantidentifier", PARTICIPANT_ACTION + "deleteIn"),
    f"{{{LRS}}}PageRequest": ("manageparticipantidentifier", PARTICIPANT_ACTION + "listIn"),
    f"{{{LRS}}}PrepareMigrationRecord": ("manageparticipantidentifier", PARTICIPANT_ACTION + "prepareMigrateIn"),
    f"{{{LRS}}}CompleteMigrationRecord": ("manageparticipantidentifier", PARTICIPANT_ACTION + "migrateIn"),
    f"{{{BDMSL}}}PrepareChangeCertificate": ("bdmslservice", "ec:services:wsdl:BDMSL:1.0:prepareChangeCertificateIn"),
}
PAGE_SIZE = 2  # small, so listing has to follow NextPageIdentifier


class Fault(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class SmpRow:
    logical: str
    physical: str
    owner: str  # sha256 of the client certificate that created it


@dataclass
class Seen:
    service: str
    action: str
    element: str  # local name of the body element
    body: etree._Element


@dataclass
class FakeBdmsl:
    """The state of the SML; tests read and seed it directly."""

    smps: dict[str, SmpRow] = field(default_factory=dict)
    participants: dict[str, str] = field(default_factory=dict)  # "scheme::value" (lower) -> SMP id
    migrations: dict[str, tuple[str, str]] = field(default_factory=dict)  # participant -> (SMP id, key)
    certificate_changes: list[tuple[str, str, str | None]] = field(default_factory=list)  # owner, PEM, date
    requests: list[Seen] = field(default_factory=list)
    url: str = ""

    def seed_smp(self, smp_id: str, owner: x509.Certificate, logical: str = "https://smp.example/smp") -> None:
        self.smps[smp_id] = SmpRow(logical, "127.0.0.1", fingerprint(owner))

    def participants_of(self, smp_id: str) -> list[str]:
        return sorted(p for p, owner in self.participants.items() if owner == smp_id)

    # -- operations ------------------------------------------------------------------------

    def _own_smp(self, smp_id: str, caller: str) -> SmpRow:
        row = self.smps.get(smp_id)
        if row is None:
            raise Fault("NotFoundFault", f"[ERR-100] The SMP '{smp_id}' doesn't exist.")
        if row.owner != caller:
            raise Fault("UnauthorizedFault", f"[ERR-105] The SMP '{smp_id}' belongs to another certificate.")
        return row

    def handle(self, op: etree._Element, caller: str) -> etree._Element | None:
        tag = etree.QName(op).localname
        smp_id = (op.findtext(f"{{{LRS}}}ServiceMetadataPublisherID") or "").strip()
        pid = op.find(f"{{{IDS}}}ParticipantIdentifier")
        participant = f"{pid.get('scheme')}::{(pid.text or '').strip().lower()}" if pid is not None else ""
        if tag in ("CreateServiceMetadataPublisherService", "UpdateServiceMetadataPublisherService"):
            logical = op.findtext(f"{{{LRS}}}PublisherEndpoint/{{{LRS}}}LogicalAddress") or ""
            physical = op.findtext(f"{{{LRS}}}PublisherEndpoint/{{{LRS}}}PhysicalAddress") or ""
            if not logical.startswith("https://"):
                raise Fault("BadRequestFault", f"[ERR-106] The logical address '{logical}' must use https.")
            if tag.startswith("Create"):
                if smp_id in self.smps:
                    raise Fault("BadRequestFault", f"[ERR-106] The SMP '{smp_id}' already exists.")
                self.smps[smp_id] = SmpRow(logical, physical, caller)
            else:
                row = self._own_smp(smp_id, caller)
                row.logical, row.physical = logical, physical
            return None
        if tag == "ReadServiceMetadataPublisherService":
            row = self._own_smp(smp_id, caller)
            answer = etree.Element(f"{{{LRS}}}ServiceMetadataPublisherService", nsmap={"lrs": LRS})
            endpoint = etree.SubElement(answer, f"{{{LRS}}}PublisherEndpoint")
            etree.SubElement(endpoint, f"{{{LRS}}}LogicalAddress").text = row.logical
            etree.SubElement(endpoint, f"{{{LRS}}}PhysicalAddress").text = row.physical
            etree.SubElement(answer, f"{{{LRS}}}ServiceMetadataPublisherID").text = smp_id
            return answer
        if tag == "ServiceMetadataPublisherID":
            smp_id = (op.text or "").strip()
            self._own_smp(smp_id, caller)
            del self.smps[smp_id]
            return None
        if tag == "CreateParticipantIdentifier":
            self._own_smp(smp_id, caller)
            if participant in self.participants:
                raise Fault("BadRequestFault", f"[ERR-106] The participant identifier '{participant}' already exists.")
            self.participants[participant] = smp_id
            return None
        if tag == "DeleteParticipantIdentifier":
            self._own_smp(smp_id, caller)
            if self.participants.get(participant) != smp_id:
                raise Fault("NotFoundFault", f"[ERR-110] The participant identifier '{participant}' doesn't exist.")
            del self.participants[participant]
            return None
        if tag == "PageRequest":
            self._own_smp(smp_id, caller)
            start = int(op.findtext(f"{{{LRS}}}NextPageIdentifier") or 0)
            mine = self.participants_of(smp_id)
            page = etree.Element(f"{{{LRS}}}ParticipantIdentifierPage", nsmap={"lrs": LRS, "ids": IDS})
            for item in mine[start : start + PAGE_SIZE]:
                scheme, value = item.split("::", 1)
                etree.SubElement(page, f"{{{IDS}}}ParticipantIdentifier", {"scheme": scheme}).text = value
            etree.SubElement(page, f"{{{LRS}}}ServiceMetadataPublisherID").text = smp_id
            if start + PAGE_SIZE < len(mine):
                etree.SubElement(page, f"{{{LRS}}}NextPageIdentifier").text = str(start + PAGE_SIZE)
            return page
        if tag in ("PrepareMigrationRecord", "CompleteMigrationRecord"):
            self._own_smp(smp_id, caller)
            key = op.findtext(f"{{{LRS}}}MigrationKey") or ""
            try:
                check_migration_key(key)
            except Exception as exc:
                raise Fault("BadRequestFault", f"[ERR-106] {exc}") from None
            if tag == "PrepareMigrationRecord":
                if self.participants.get(participant) != smp_id:
                    raise Fault("NotFoundFault", f"[ERR-110] The participant '{participant}' is not yours.")
                self.migrations[participant] = (smp_id, key)
                return None
            prepared = self.migrations.get(participant)
            if prepared is None or prepared[1] != key:
                raise Fault("NotFoundFault", f"[ERR-110] No migration of '{participant}' with this key.")
            del self.migrations[participant]
            self.participants[participant] = smp_id
            return None
        if tag == "PrepareChangeCertificate":
            pem = (op.findtext(f"{{{BDMSL}}}newCertificatePublicKey") or "").strip()
            when = op.findtext(f"{{{BDMSL}}}migrationDate")
            try:
                x509.load_pem_x509_certificate(pem.encode())
            except ValueError:
                raise Fault("BadRequestFault", "[ERR-106] The new certificate cannot be read.") from None
            if when is not None and dt.date.fromisoformat(when) < dt.date.today():
                raise Fault("BadRequestFault", "[ERR-106] The migration date must not be in the past.")
            if not any(row.owner == caller for row in self.smps.values()):
                raise Fault("UnauthorizedFault", "[ERR-105] No SMP is registered with this certificate.")
            self.certificate_changes.append((caller, pem, when))
            return None
        raise Fault("BadRequestFault", f"[ERR-106] Unknown operation {tag}.")


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _envelope(content: etree._Element | None) -> bytes:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP})
    body = etree.SubElement(envelope, f"{{{SOAP}}}Body")
    if content is not None:
        body.append(content)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def fault_body(kind: str, message: str) -> bytes:
    """A SOAP 1.1 fault as the SML writes it: the code, a string, the typed detail."""
    fault = etree.Element(f"{{{SOAP}}}Fault")
    etree.SubElement(fault, "faultcode").text = "soap:Client" if kind != "InternalErrorFault" else "soap:Server"
    etree.SubElement(fault, "faultstring").text = message
    detail = etree.SubElement(fault, "detail")
    typed = etree.SubElement(detail, f"{{{LRS}}}{kind}", nsmap={"lrs": LRS})
    etree.SubElement(typed, f"{{{LRS}}}FaultMessage").text = message
    return _envelope(fault)


def _app(state: FakeBdmsl) -> web.Application:
    async def manage(request: web.Request) -> web.Response:
        service = request.match_info["service"]
        action = request.headers.get("SOAPAction", "").strip('"')
        der = request.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)  # type: ignore[union-attr]
        caller = hashlib.sha256(der).hexdigest()
        try:
            root = etree.fromstring(await request.read(), etree.XMLParser(resolve_entities=False, no_network=True))
            body = root.find(f"{{{SOAP}}}Body")
            if root.tag != f"{{{SOAP}}}Envelope" or body is None or not len(body):
                raise Fault("BadRequestFault", "[ERR-106] Not a SOAP 1.1 envelope.")
            op = body[0]
            state.requests.append(Seen(service, action, etree.QName(op).localname, op))
            expected = OPERATIONS.get(op.tag)
            if expected is None or expected != (service, action):
                raise Fault("BadRequestFault", f"[ERR-106] {op.tag} is not served at {service} with {action!r}.")
            answer = state.handle(op, caller)
        except Fault as fault:
            return web.Response(status=500, body=fault_body(fault.kind, fault.message), content_type="text/xml")
        return web.Response(body=_envelope(answer), content_type="text/xml")

    app = web.Application()
    app.router.add_post("/edelivery-sml/{service}", manage)
    return app


@dataclass(frozen=True)
class SmlTls:
    """The SML's TLS server certificate and the CA file a client trusts it with."""

    ca_file: Path
    server: Issued


def sml_tls(directory: Path) -> SmlTls:
    """A CA of its own (like the public CA of the real SML) and a server certificate for
    127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = issue(name("Dev SML TLS CA"), None, ca=True, path_length=0)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = _server_certificate(ca, san)
    ca_file = directory / "sml-tls-ca.cert.pem"
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    (directory / "sml-tls.cert.pem").write_bytes(server.cert.public_bytes(serialization.Encoding.PEM))
    (directory / "sml-tls.key.pem").write_bytes(
        server.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return SmlTls(ca_file, server)


def _server_certificate(ca: Issued, san: x509.SubjectAlternativeName) -> Issued:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1", "Dev SML"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


def server_context(tls: SmlTls, pki: DevPki) -> ssl.SSLContext:
    """TLS that requires a client certificate issued by the development SMP CA (and only it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    directory = tls.ca_file.parent
    context.load_cert_chain(str(directory / "sml-tls.cert.pem"), str(directory / "sml-tls.key.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=pki.smp_ca.cert.public_bytes(serialization.Encoding.PEM).decode())
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the SMP CA alone is the anchor
    return context


@asynccontextmanager
async def running_bdmsl(pki: DevPki, directory: Path) -> AsyncIterator[tuple[FakeBdmsl, SmlTls]]:
    """The SML on a free loopback port; ``state.url`` is its management base URL."""
    tls = sml_tls(directory)
    state = FakeBdmsl()
    runner = web.AppRunner(_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(tls, pki))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"https://127.0.0.1:{port}/edelivery-sml"
    try:
        yield state, tls
    finally:
        await runner.cleanup()
