"""SMP 1.x XML: ServiceGroup and SignedServiceMetadata, built, signed, parsed and verified.

Signatures are enveloped XML-DSig over the whole document (``URI=""``) with inclusive C14N 1.0,
RSA-SHA256 and SHA-256, the SMP certificate in ``X509Data`` (SMP 1.4.0 §5.5). We sign with
signxml. We verify with libxmlsec1 (the ``xmlsec`` binding, the engine of the ``xmlsec1`` tool):
it canonicalises node sets of the whole document as the C14N specifications say, so every shape
real SMPs write verifies, including a ``Signature`` in the default namespace with inclusive C14N,
which lxml's subtree canonicalisation (and so signxml) gets wrong. The signature's shape and
algorithms are checked here first, and only the signed tree is read afterwards.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from smp._errors import DiscoveryError
from smp._identifiers import DocumentTypeId, IdentifierError, ParticipantId, ProcessId

if TYPE_CHECKING:  # the binding's stubs name its transform type privately
    from xmlsec.constants import __Transform as Transform

__all__ = [
    "AS4_TRANSPORT",
    "Endpoint",
    "MetadataError",
    "ProcessEntry",
    "Redirect",
    "ServiceMetadata",
    "SignatureInvalid",
    "UntrustedSmpCertificate",
    "build_service_group",
    "build_signed_redirect",
    "build_signed_service_metadata",
    "parse_service_group",
    "verify_signed_service_metadata",
]

SMP = "http://busdox.org/serviceMetadata/publishing/1.0/"
IDS = "http://busdox.org/transport/identifiers/1.0/"
WSA = "http://www.w3.org/2005/08/addressing"
DS = "http://www.w3.org/2000/09/xmldsig#"
AS4_TRANSPORT = "peppol-transport-as4-v2_0"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
# The canonicalisations, signature and digest methods we accept, with libxmlsec1's transform for
# each: the verifier is allowed nothing else.
_C14N_METHODS = {
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": xmlsec.constants.TransformInclC14N,
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments": xmlsec.constants.TransformInclC14NWithComments,
    "http://www.w3.org/2006/12/xml-c14n11": xmlsec.constants.TransformInclC14N11,
    "http://www.w3.org/2006/12/xml-c14n11#WithComments": xmlsec.constants.TransformInclC14N11WithComments,
    "http://www.w3.org/2001/10/xml-exc-c14n#": xmlsec.constants.TransformExclC14N,
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments": xmlsec.constants.TransformExclC14NWithComments,
}
_SIGNATURE_METHODS = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": xmlsec.constants.TransformRsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": xmlsec.constants.TransformRsaSha512,
}
_DIGEST_METHODS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": xmlsec.constants.TransformSha256,
    "http://www.w3.org/2001/04/xmlenc#sha512": xmlsec.constants.TransformSha512,
}


class MetadataError(DiscoveryError):
    """An SMP document is malformed or says something it must not."""


class SignatureInvalid(MetadataError):
    """The SMP response's signature is missing, malformed or does not verify."""


class UntrustedSmpCertificate(MetadataError):
    """The SMP response was signed by a certificate we do not trust."""


def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, collect_ids=False)


def parse_xml(data: bytes) -> etree._Element:
    """Parse an SMP answer; DTDs (and so entities) are refused."""
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data:
        raise MetadataError("SMP documents must not carry a document type declaration")
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"not well-formed XML: {exc}") from None


@dataclass(frozen=True)
class Endpoint:
    """One AS4 endpoint of a participant for a document type and process."""

    url: str
    certificate: x509.Certificate
    transport_profile: str = AS4_TRANSPORT
    activation: datetime | None = None
    expiration: datetime | None = None
    description: str = ""
    technical_contact: str = ""
    technical_information: str | None = None

    def active_at(self, when: datetime) -> bool:
        if self.activation is not None and when < self.activation:
            return False
        return not (self.expiration is not None and when > self.expiration)


@dataclass(frozen=True)
class ProcessEntry:
    process: ProcessId
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True)
class ServiceMetadata:
    participant: ParticipantId
    document_type: DocumentTypeId
    processes: tuple[ProcessEntry, ...]


@dataclass(frozen=True)
class Redirect:
    href: str
    certificate_uid: str


@dataclass(frozen=True)
class VerifiedMetadata:
    content: ServiceMetadata | Redirect
    signer: x509.Certificate
    steps: list[str] = field(default_factory=list)


# -- building ----------------------------------------------------------------------------------


def _identifier(parent: etree._Element, tag: str, scheme: str, value: str) -> None:
    el = etree.SubElement(parent, _q(IDS, tag), {"scheme": scheme})
    el.text = value


def build_service_group(participant: ParticipantId, document_types: Sequence[DocumentTypeId], base_url: str) -> bytes:
    """The (unsigned) ServiceGroup listing one reference per document type."""
    root = etree.Element(_q(SMP, "ServiceGroup"), nsmap={"smp": SMP, "ids": IDS})
    _identifier(root, "ParticipantIdentifier", participant.scheme, participant.value)
    refs = etree.SubElement(root, _q(SMP, "ServiceMetadataReferenceCollection"))
    for doc in document_types:
        href = f"{base_url.rstrip('/')}/{participant.url_segment}/services/{doc.url_segment}"
        etree.SubElement(refs, _q(SMP, "ServiceMetadataReference"), {"href": href})
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=128)
def _der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


def build_signed_service_metadata(metadata: ServiceMetadata, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bytes:
    """SignedServiceMetadata for ``metadata``, signed enveloped with ``key``."""
    root = etree.Element(_q(SMP, "SignedServiceMetadata"), nsmap={"smp": SMP, "ids": IDS, "wsa": WSA})
    info = etree.SubElement(etree.SubElement(root, _q(SMP, "ServiceMetadata")), _q(SMP, "ServiceInformation"))
    _identifier(info, "ParticipantIdentifier", metadata.participant.scheme, metadata.participant.value)
    _identifier(info, "DocumentIdentifier", metadata.document_type.scheme, metadata.document_type.value)
    plist = etree.SubElement(info, _q(SMP, "ProcessList"))
    for entry in metadata.processes:
        process = etree.SubElement(plist, _q(SMP, "Process"))
        _identifier(process, "ProcessIdentifier", entry.process.scheme, entry.process.value)
        elist = etree.SubElement(process, _q(SMP, "ServiceEndpointList"))
        for ep in entry.endpoints:
            e = etree.SubElement(elist, _q(SMP, "Endpoint"), {"transportProfile": ep.transport_profile})
            ref = etree.SubElement(e, _q(WSA, "EndpointReference"))
            etree.SubElement(ref, _q(WSA, "Address")).text = ep.url
            etree.SubElement(e, _q(SMP, "RequireBusinessLevelSignature")).text = "false"
            if ep.activation:
                etree.SubElement(e, _q(SMP, "ServiceActivationDate")).text = _stamp(ep.activation)
            if ep.expiration:
                etree.SubElement(e, _q(SMP, "ServiceExpirationDate")).text = _stamp(ep.expiration)
            etree.SubElement(e, _q(SMP, "Certificate")).text = _der_b64(ep.certificate)
            etree.SubElement(e, _q(SMP, "ServiceDescription")).text = ep.description
            etree.SubElement(e, _q(SMP, "TechnicalContactUrl")).text = ep.technical_contact
            if ep.technical_information:
                etree.SubElement(e, _q(SMP, "TechnicalInformationUrl")).text = ep.technical_information
    return sign_document(root, key, cert)


def build_signed_redirect(href: str, certificate_uid: str, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bytes:
    """A SignedServiceMetadata that sends the client to another SMP."""
    root = etree.Element(_q(SMP, "SignedServiceMetadata"), nsmap={"smp": SMP, "ids": IDS})
    redirect = etree.SubElement(etree.SubElement(root, _q(SMP, "ServiceMetadata")), _q(SMP, "Redirect"))
    redirect.set("href", href)
    etree.SubElement(redirect, _q(SMP, "CertificateUID")).text = certificate_uid
    return sign_document(root, key, cert)


def sign_document(root: etree._Element, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bytes:
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0,
    )
    signed = signer.sign(root, key=key, cert=[cert], exclude_c14n_transform_element=True)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


# -- parsing and verification ---------------------------------------------------------------------


def parse_service_group(data: bytes) -> tuple[ParticipantId, list[DocumentTypeId]]:
    """The participant and the document types a ServiceGroup references (by decoded href)."""
    from urllib.parse import unquote, urlsplit

    root = parse_xml(data)
    if root.tag != _q(SMP, "ServiceGroup"):
        raise MetadataError(f"expected smp:ServiceGroup, got {root.tag}")
    pid = root.find(_q(IDS, "ParticipantIdentifier"))
    if pid is None:
        raise MetadataError("ServiceGroup has no ParticipantIdentifier")
    try:
        participant = ParticipantId.of(pid.get("scheme", ""), (pid.text or "").strip())
        doctypes = []
        for ref in root.iter(_q(SMP, "ServiceMetadataReference")):
            segment = urlsplit(ref.get("href", "")).path.rstrip("/").rsplit("/", 1)[-1]
            doctypes.append(DocumentTypeId.parse(unquote(segment), registration=True))
    except IdentifierError as exc:
        raise MetadataError(f"ServiceGroup: {exc}") from None
    return participant, doctypes


def _parse_time(text: str | None) -> datetime | None:
    if not text or not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MetadataError(f"{text!r} is not an xs:dateTime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _certificate(text: str) -> x509.Certificate:
    cleaned = text.replace("-----BEGIN CERTIFICATE-----", "").replace("-----END CERTIFICATE-----", "")
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(cleaned.split())))
    except ValueError:
        raise MetadataError("Endpoint Certificate is not a base64 DER certificate") from None


def _endpoint(e: etree._Element) -> Endpoint:
    return Endpoint(
        url=(e.findtext(f"{_q(WSA, 'EndpointReference')}/{_q(WSA, 'Address')}") or "").strip(),
        certificate=_certificate(e.findtext(_q(SMP, "Certificate")) or ""),
        transport_profile=e.get("transportProfile", ""),
        activation=_parse_time(e.findtext(_q(SMP, "ServiceActivationDate"))),
        expiration=_parse_time(e.findtext(_q(SMP, "ServiceExpirationDate"))),
        description=(e.findtext(_q(SMP, "ServiceDescription")) or "").strip(),
        technical_contact=(e.findtext(_q(SMP, "TechnicalContactUrl")) or "").strip(),
        technical_information=(e.findtext(_q(SMP, "TechnicalInformationUrl")) or "").strip() or None,
    )


def _algorithm(parent: etree._Element, tag: str, allowed: dict[str, Transform], what: str) -> Transform:
    el = parent.find(_q(DS, tag))
    algorithm = el.get("Algorithm", "") if el is not None else ""
    if algorithm not in allowed:
        raise SignatureInvalid(f"{what} {algorithm!r} is not allowed")
    return allowed[algorithm]


@dataclass(frozen=True)
class _Shape:
    """A signature that passed our shape checks, with the transforms libxmlsec1 may use for it."""

    signature: etree._Element
    reference_transforms: tuple[Transform, ...]
    signature_transforms: tuple[Transform, ...]


def _check_shape(root: etree._Element) -> _Shape:
    """One enveloped signature, a child of the root, with one reference to the whole document and
    only whitelisted algorithms: the shape that leaves no room for signature wrapping."""
    signatures = list(root.iter(_q(DS, "Signature")))
    if not signatures:
        raise SignatureInvalid("the SMP response is not signed")
    if len(signatures) != 1 or signatures[0].getparent() is not root:
        raise SignatureInvalid("exactly one ds:Signature, as a child of the root, is allowed")
    signature = signatures[0]
    signed_info = signature.find(_q(DS, "SignedInfo"))
    if signed_info is None:
        raise SignatureInvalid("the signature has no SignedInfo")
    c14n = _algorithm(signed_info, "CanonicalizationMethod", _C14N_METHODS, "canonicalization")
    method = _algorithm(signed_info, "SignatureMethod", _SIGNATURE_METHODS, "signature method")
    refs = signed_info.findall(_q(DS, "Reference"))
    if len(refs) != 1 or refs[0].get("URI") != "":
        raise SignatureInvalid('the signature must have exactly one reference, URI=""')
    transforms = [t.get("Algorithm") or "" for t in refs[0].iterfind(f"{_q(DS, 'Transforms')}/{_q(DS, 'Transform')}")]
    enveloped = bool(transforms) and transforms[0] == _ENVELOPED
    if not enveloped or len(transforms) > 2 or not set(transforms[1:]) <= set(_C14N_METHODS):
        raise SignatureInvalid(f"signature transforms {transforms} are not an enveloped signature")
    digest = _algorithm(refs[0], "DigestMethod", _DIGEST_METHODS, "digest method")
    key_info = signature.find(_q(DS, "KeyInfo"))
    cert_text = key_info.findtext(f"{_q(DS, 'X509Data')}/{_q(DS, 'X509Certificate')}") if key_info is not None else None
    if not cert_text:
        raise SignatureInvalid("the signature carries no X509Certificate")
    reference = (xmlsec.constants.TransformEnveloped, digest, *(_C14N_METHODS[t] for t in transforms[1:]))
    return _Shape(signature, reference, (c14n, method))


def _signed_tree(root: etree._Element, shape: _Shape, signer: x509.Certificate) -> etree._Element:
    """Verify with libxmlsec1 using only ``signer``'s key and the whitelisted transforms; return
    the document as it was digested (signature removed, comments dropped: a ``URI=""`` reference
    does not sign comments, so a comment planted in a text node must not shorten what we read)."""
    context = xmlsec.SignatureContext()
    try:
        context.key = xmlsec.Key.from_memory(signer.public_bytes(Encoding.PEM), xmlsec.constants.KeyDataFormatCertPem)
        context.set_enabled_key_data([])  # the key is the one given, never one found in KeyInfo
        for transform in shape.reference_transforms:
            context.enable_reference_transform(transform)
        for transform in shape.signature_transforms:
            context.enable_signature_transform(transform)
        context.verify(shape.signature)
    except xmlsec.Error as exc:
        raise SignatureInvalid(f"SMP signature does not verify: {exc}") from None
    copy = etree.fromstring(etree.tostring(root))
    for signature in copy.findall(_q(DS, "Signature")):
        copy.remove(signature)
    canonical = etree.tostring(copy, method="c14n", exclusive=False, with_comments=False)
    return etree.fromstring(canonical, _PARSER)


def check_smp_certificate(cert: x509.Certificate, trusted_cas: Sequence[x509.Certificate], at: datetime) -> None:
    """Issued directly by one of ``trusted_cas`` (the SMP CA), both valid at ``at``."""
    for ca in trusted_cas:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):
            continue
        for c, what in ((cert, "SMP certificate"), (ca, "SMP CA")):
            if not c.not_valid_before_utc <= at <= c.not_valid_after_utc:
                raise UntrustedSmpCertificate(f"the {what} is not valid now")
        return
    raise UntrustedSmpCertificate(
        f"SMP certificate {cert.subject.rfc4514_string()!r} is not issued by a trusted SMP CA"
    )


def verify_signed_service_metadata(
    data: bytes, trusted_cas: Sequence[x509.Certificate], at: datetime | None = None
) -> VerifiedMetadata:
    """Verify and read a SignedServiceMetadata; returns its content and the signer."""
    at = at or datetime.now(UTC)
    root = parse_xml(data)
    if root.tag != _q(SMP, "SignedServiceMetadata"):
        raise MetadataError(f"expected smp:SignedServiceMetadata, got {root.tag}")
    shape = _check_shape(root)
    signer = _certificate(shape.signature.findtext(f".//{_q(DS, 'X509Certificate')}") or "")
    steps = ["signature shape: enveloped, one reference to the whole document"]
    check_smp_certificate(signer, trusted_cas, at)
    steps.append(f"SMP certificate trusted: {signer.subject.rfc4514_string()}")
    signed = _signed_tree(root, shape, signer)
    steps.append("signature verified")
    if signed.tag != _q(SMP, "SignedServiceMetadata"):
        raise SignatureInvalid("the signed tree is not the SignedServiceMetadata")
    metadata = signed.find(_q(SMP, "ServiceMetadata"))
    if metadata is None:
        raise MetadataError("SignedServiceMetadata has no ServiceMetadata")
    redirect = metadata.find(_q(SMP, "Redirect"))
    if redirect is not None:
        return VerifiedMetadata(
            Redirect(
                redirect.get("href", ""),
                (redirect.findtext(_q(SMP, "CertificateUID")) or "").strip(),
            ),
            signer,
            steps,
        )
    info = metadata.find(_q(SMP, "ServiceInformation"))
    if info is None:
        raise MetadataError("ServiceMetadata has neither ServiceInformation nor Redirect")
    pid = info.find(_q(IDS, "ParticipantIdentifier"))
    did = info.find(_q(IDS, "DocumentIdentifier"))
    if pid is None or did is None:
        raise MetadataError("ServiceInformation lacks its identifiers")
    try:
        participant = ParticipantId.of(pid.get("scheme", ""), (pid.text or "").strip())
        document_type = DocumentTypeId.of(did.get("scheme", ""), (did.text or "").strip(), registration=True)
        processes = []
        for p in info.iterfind(f"{_q(SMP, 'ProcessList')}/{_q(SMP, 'Process')}"):
            proc_el = p.find(_q(IDS, "ProcessIdentifier"))
            if proc_el is None:
                raise MetadataError("Process without ProcessIdentifier")
            process = ProcessId.of(proc_el.get("scheme", "cenbii-procid-ubl"), (proc_el.text or "").strip())
            endpoints = tuple(
                _endpoint(e) for e in p.iterfind(f"{_q(SMP, 'ServiceEndpointList')}/{_q(SMP, 'Endpoint')}")
            )
            processes.append(ProcessEntry(process, endpoints))
    except IdentifierError as exc:
        raise MetadataError(f"ServiceInformation: {exc}") from None
    return VerifiedMetadata(ServiceMetadata(participant, document_type, tuple(processes)), signer, steps)
