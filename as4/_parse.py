"""Parse an inbound AS4 UserMessage strictly: MIME, SOAP, ebMS header, decryption, signature,
decompression. Every failure is an :class:`as4.As4Error` subclass carrying its ebMS code."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from as4._crypto import gcm_decrypt, gunzip, oaep_unwrap
from as4._dsig import VerifiedSignature, certificate_base64, certificate_der, verify_signature
from as4._errors import (
    FailedAuthentication,
    FailedDecryption,
    InvalidHeader,
    MimeInconsistency,
    OtherError,
    PolicyNoncompliance,
    ProcessingModeMismatch,
    ValueInconsistent,
    ValueNotRecognized,
)
from as4._mime import MimePart, parse_content_type, parse_multipart
from as4._model import ReceivedMessage, UserMessageHeader
from as4._ns import (
    AES128_GCM,
    AES256_GCM,
    DS,
    EB,
    GZIP,
    MGF1_SHA1,
    MGF1_SHA256,
    PEPPOL_AGREEMENT,
    PEPPOL_PARTY_TYPE,
    ROLE_INITIATOR,
    ROLE_RESPONDER,
    RSA_OAEP,
    RSA_OAEP_MGF1P,
    S12,
    SHA1,
    SHA256,
    WSSE,
    WSU,
    X509V3,
    XENC,
    XENC11,
    q,
)
from as4._xml import by_tag, c14n, child, children, parse_xml

__all__ = [
    "ParseTrace",
    "SoapMessage",
    "parse_user_message",
    "read_soap",
    "seat_id",
    "user_message_header",
    "verify_without_key",
]

SEAT_ID = re.compile(r"^P[A-Z]{2}[0-9]{6}$")
_S12_HEADER = q(S12, "Header")
_S12_BODY = q(S12, "Body")
_EB_MESSAGING = q(EB, "Messaging")
_WSSE_SECURITY = q(WSSE, "Security")
_WSSE_BST = q(WSSE, "BinarySecurityToken")
_WSSE_STR = q(WSSE, "SecurityTokenReference")
_WSSE_REFERENCE = q(WSSE, "Reference")
_WSSE_KEY_IDENTIFIER = q(WSSE, "KeyIdentifier")
_WSU_ID = q(WSU, "Id")
_DS_KEY_INFO = q(DS, "KeyInfo")
_DS_DIGEST_METHOD = q(DS, "DigestMethod")
_XENC11_MGF = q(XENC11, "MGF")
_XENC_ENCRYPTED_DATA = q(XENC, "EncryptedData")
_XENC_ENCRYPTED_KEY = q(XENC, "EncryptedKey")
_XENC_ENCRYPTION_METHOD = q(XENC, "EncryptionMethod")
_XENC_CIPHER_DATA = q(XENC, "CipherData")
_XENC_CIPHER_REFERENCE = q(XENC, "CipherReference")
_XENC_CIPHER_VALUE = q(XENC, "CipherValue")
_XENC_REFERENCE_LIST = q(XENC, "ReferenceList")
_XENC_DATA_REFERENCE = q(XENC, "DataReference")
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


def seat_id(cert: x509.Certificate) -> str:
    """The CN of a certificate's subject: a Peppol AP's seat id."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


@dataclass(frozen=True)
class SoapMessage:
    """The SOAP envelope of a message and its attachments, before any security processing."""

    root: etree._Element
    header: etree._Element
    body: etree._Element
    messaging: etree._Element
    security: etree._Element | None
    attachments: list[MimePart]


def read_soap(body: bytes, content_type: str) -> SoapMessage:
    """Unframe MIME (or a plain SOAP document) and locate the SOAP parts."""
    mime_type, params = parse_content_type(content_type or "")
    attachments: list[MimePart] = []
    if mime_type == "multipart/related":
        parts = parse_multipart(body, params.get("boundary", ""))
        start = params.get("start", "").strip().strip("<>")
        root_index = 0
        if start:
            matches = [i for i, p in enumerate(parts) if p.content_id == start]
            if len(matches) != 1:
                raise MimeInconsistency(f"the start part <{start}> is not in the message")
            root_index = matches[0]
        root_part = parts[root_index]
        if root_part.content_type not in ("application/soap+xml", "text/xml", "application/xml"):
            raise MimeInconsistency(f"root part has type {root_part.content_type!r}")
        soap_bytes = bytes(root_part.body)
        attachments = [p for i, p in enumerate(parts) if i != root_index]
    elif mime_type in ("application/soap+xml", "text/xml", "application/xml"):
        soap_bytes = body
    else:
        raise MimeInconsistency(f"Content-Type {mime_type or '(none)'!r} is not an AS4 message")

    root = parse_xml(soap_bytes)
    if root.tag == q(SOAP11, "Envelope"):
        raise ValueNotRecognized("SOAP 1.1 is not allowed: Peppol AS4 uses SOAP 1.2")
    if root.tag != q(S12, "Envelope"):
        raise InvalidHeader(f"root element {root.tag!r} is not a SOAP 1.2 Envelope")
    headers = children(root, _S12_HEADER)
    bodies = children(root, _S12_BODY)
    if len(headers) != 1 or len(bodies) != 1:
        raise InvalidHeader("the envelope must have exactly one Header and one Body")
    messagings = children(headers[0], _EB_MESSAGING)
    if len(messagings) != 1:
        raise InvalidHeader("the SOAP header must hold exactly one eb:Messaging")
    securities = children(headers[0], _WSSE_SECURITY)
    if len(securities) > 1:
        raise PolicyNoncompliance("more than one wsse:Security header")
    return SoapMessage(
        root,
        headers[0],
        bodies[0],
        messagings[0],
        securities[0] if securities else None,
        attachments,
    )


@dataclass
class ParseTrace:
    """How far parsing got, for diagnostics: filled in stage by stage."""

    attachments: list[tuple[str, str, int]] = field(default_factory=list)
    header: UserMessageHeader | None = None
    decrypted: bool | None = None
    signature: VerifiedSignature | None = None


def _attachment_list(soap: SoapMessage) -> list[tuple[str, str, int]]:
    return [(p.content_id or "", p.content_type, len(p.body)) for p in soap.attachments]


def user_message_header(soap: SoapMessage) -> tuple[UserMessageHeader, str, str, bool]:
    """The one UserMessage's typed header, payload href, MimeType and compression flag."""
    users = children(soap.messaging, _USER_MESSAGE)
    if len(users) != 1 or child(soap.messaging, _SIGNAL_MESSAGE) is not None:
        raise InvalidHeader("eb:Messaging must hold exactly one UserMessage and no signal")
    return _header(users[0])


def verify_without_key(body: bytes, content_type: str, trace: ParseTrace) -> VerifiedSignature:
    """Check header and signature of a message we cannot decrypt: the attachment's digest is
    reported unchecked, everything else (including SignatureValue) is verified."""
    soap = read_soap(body, content_type)
    trace.attachments = _attachment_list(soap)
    header, href, _, _ = user_message_header(soap)
    trace.header = header
    if soap.security is None:
        raise PolicyNoncompliance("the message has no wsse:Security header")
    contents: dict[str, bytes | None] = {href: None}
    verified = verify_signature(soap.root, soap.security, {"messaging": soap.messaging, "body": soap.body}, contents)
    trace.signature = verified
    return verified


def _one(found: list[etree._Element], what: str, error: type[Exception] = InvalidHeader) -> etree._Element:
    if len(found) != 1:
        raise error(f"{what}: expected exactly one, found {len(found)}")
    return found[0]


def _text(found: list[etree._Element], what: str) -> str:
    text = (_one(found, what).text or "").strip()
    if not text:
        raise InvalidHeader(f"{what} is empty")
    return text


def parse_timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidHeader(f"Timestamp {value!r} is not an xs:dateTime") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_EB = {
    name: q(EB, name)
    for name in (
        "UserMessage", "SignalMessage", "MessageInfo", "MessageId", "Timestamp", "RefToMessageId",
        "PartyInfo", "From", "To", "PartyId", "Role", "CollaborationInfo", "AgreementRef", "Service",
        "Action", "ConversationId", "MessageProperties", "Property", "PayloadInfo", "PartInfo",
        "PartProperties",
    )
}  # fmt: skip
_USER_MESSAGE = _EB["UserMessage"]
_SIGNAL_MESSAGE = _EB["SignalMessage"]


_NONE: list[etree._Element] = []


def _header(user: etree._Element) -> tuple[UserMessageHeader, str, str, bool]:
    """The typed header plus the payload href, its MimeType and whether it is compressed.

    Each container's children are grouped by tag once (:func:`by_tag`); ``kids.get(tag, _NONE)``
    is ``findall(tag)``, and nested lists stand for paths like ``PartyInfo/From/PartyId``."""
    e = _EB
    kids = by_tag(user)
    info = by_tag(_one(kids.get(e["MessageInfo"], _NONE), "eb:MessageInfo"))
    message_id = _text(info.get(e["MessageId"], _NONE), "eb:MessageId")
    timestamp = parse_timestamp(_text(info.get(e["Timestamp"], _NONE), "eb:Timestamp"))
    if e["RefToMessageId"] in info:
        raise ValueInconsistent("eb:RefToMessageId is not used in Peppol user messages")

    party_infos = [by_tag(pi) for pi in kids.get(e["PartyInfo"], _NONE)]
    parties: dict[str, str] = {}
    for side, role in (("From", ROLE_INITIATOR), ("To", ROLE_RESPONDER)):
        sides = [by_tag(s) for pi in party_infos for s in pi.get(e[side], _NONE)]
        ids = [p for s in sides for p in s.get(e["PartyId"], _NONE)]
        if len(ids) != 1:
            raise ProcessingModeMismatch(f"eb:{side} must have exactly one PartyId")
        if ids[0].get("type") != PEPPOL_PARTY_TYPE:
            raise ProcessingModeMismatch(f"eb:{side}/PartyId type must be {PEPPOL_PARTY_TYPE}")
        value = (ids[0].text or "").strip()
        if not SEAT_ID.match(value):
            raise OtherError(f"eb:{side}/PartyId {value!r} is not a Peppol seat id")
        roles = [r for s in sides for r in s.get(e["Role"], _NONE)]
        got_role = (roles[0].text or "").strip() if roles else ""
        if got_role != role:
            raise ProcessingModeMismatch(f"eb:{side}/Role must be {role}")
        parties[side] = value

    collab = by_tag(_one(kids.get(e["CollaborationInfo"], _NONE), "eb:CollaborationInfo"))
    agreement = _one(collab.get(e["AgreementRef"], _NONE), "eb:AgreementRef", ProcessingModeMismatch)
    if (agreement.text or "").strip() != PEPPOL_AGREEMENT or agreement.get("type") is not None:
        raise ProcessingModeMismatch(f"eb:AgreementRef must be {PEPPOL_AGREEMENT} without a type")
    service_el = _one(collab.get(e["Service"], _NONE), "eb:Service")
    service = (service_el.text or "").strip()
    action = _text(collab.get(e["Action"], _NONE), "eb:Action")
    conversation_id = _text(collab.get(e["ConversationId"], _NONE), "eb:ConversationId")
    if not service:
        raise InvalidHeader("eb:Service is empty")

    properties: dict[str, tuple[str, str]] = {}
    for prop in [p for mp in kids.get(e["MessageProperties"], _NONE) for p in children(mp, e["Property"])]:
        name = prop.get("name") or ""
        if name in properties:
            raise ValueInconsistent(f"message property {name!r} appears twice")
        properties[name] = ((prop.text or "").strip(), prop.get("type") or "")
    for needed in ("originalSender", "finalRecipient"):
        if needed not in properties or not properties[needed][0]:
            raise ProcessingModeMismatch(f"message property {needed!r} is missing")
        if not properties[needed][1]:
            raise OtherError(f"message property {needed!r} has no type")
    if "trackingIdentifier" in properties:
        raise ValueInconsistent("the trackingIdentifier property must not be used in Peppol")

    part_infos = [pi for pl in kids.get(e["PayloadInfo"], _NONE) for pi in children(pl, e["PartInfo"])]
    if len(part_infos) != 1:
        raise ValueInconsistent(f"expected exactly one eb:PartInfo, found {len(part_infos)}")
    href = part_infos[0].get("href") or ""
    if not href.startswith("cid:"):
        raise ValueInconsistent("the payload must be a MIME attachment referenced by cid:")
    part_props = {
        (p.get("name") or ""): (p.text or "").strip()
        for p in children(part_infos[0], e["PartProperties"], e["Property"])
    }
    compression = part_props.get("CompressionType")
    if compression not in (None, GZIP):
        raise ValueNotRecognized(f"CompressionType {compression!r} is not supported")
    mime = part_props.get("MimeType", "application/xml")

    header = UserMessageHeader(
        message_id=message_id,
        conversation_id=conversation_id,
        timestamp=timestamp,
        from_party=parties["From"],
        to_party=parties["To"],
        service=service,
        service_type=service_el.get("type") or "",
        action=action,
        original_sender=properties["originalSender"][0],
        original_sender_type=properties["originalSender"][1],
        final_recipient=properties["finalRecipient"][0],
        final_recipient_type=properties["finalRecipient"][1],
        agreement=PEPPOL_AGREEMENT,
    )
    return header, href[4:], mime, compression == GZIP


def _oaep_parameters(method: etree._Element) -> tuple[hashes.HashAlgorithm, hashes.HashAlgorithm]:
    algorithm = method.get("Algorithm")
    digest_el = child(method, _DS_DIGEST_METHOD)
    digest_uri = digest_el.get("Algorithm", "") if digest_el is not None else SHA1
    mgf_el = child(method, _XENC11_MGF)
    digests: dict[str, hashes.HashAlgorithm] = {SHA256: hashes.SHA256(), SHA1: hashes.SHA1()}  # noqa: S303
    if digest_uri not in digests:
        raise PolicyNoncompliance(f"RSA-OAEP digest {digest_uri!r} is not supported")
    if algorithm == RSA_OAEP:
        mgf_uri = mgf_el.get("Algorithm", "") if mgf_el is not None else MGF1_SHA1
        mgfs: dict[str, hashes.HashAlgorithm] = {
            MGF1_SHA256: hashes.SHA256(),
            MGF1_SHA1: hashes.SHA1(),  # noqa: S303 - legacy key transport some peers send
        }
        if mgf_uri not in mgfs:
            raise PolicyNoncompliance(f"RSA-OAEP MGF {mgf_uri!r} is not supported")
        return digests[digest_uri], mgfs[mgf_uri]
    if algorithm == RSA_OAEP_MGF1P:
        return digests[digest_uri], hashes.SHA1()  # noqa: S303
    raise PolicyNoncompliance(f"key transport {algorithm!r} is not allowed")


def _key_is_ours(security: etree._Element, encrypted_key: etree._Element, our_cert: x509.Certificate) -> None:
    """The EncryptedKey must be addressed to our certificate (by BST, or by SKI)."""
    str_el = child(encrypted_key, _DS_KEY_INFO, _WSSE_STR)
    if str_el is None:
        raise PolicyNoncompliance("EncryptedKey has no SecurityTokenReference to our certificate")
    ref = child(str_el, _WSSE_REFERENCE)
    if ref is not None and (ref.get("URI") or "").startswith("#"):
        wanted = (ref.get("URI") or "")[1:]
        tokens = [t for t in children(security, _WSSE_BST) if t.get(_WSU_ID) == wanted]
        if len(tokens) != 1 or tokens[0].get("ValueType") != X509V3:
            raise PolicyNoncompliance("EncryptedKey references no X.509 BinarySecurityToken")
        text = "".join((tokens[0].text or "").split())
        if text == certificate_base64(our_cert):
            return
        try:
            der = base64.b64decode(text, validate=True)
        except ValueError:
            raise PolicyNoncompliance("BinarySecurityToken is not base64") from None
        if der != certificate_der(our_cert):
            raise FailedDecryption("the message was encrypted for another certificate")
        return
    key_id = child(str_el, _WSSE_KEY_IDENTIFIER)
    if key_id is not None and (key_id.get("ValueType") or "").endswith("#X509SubjectKeyIdentifier"):
        try:
            ski = our_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ski = x509.SubjectKeyIdentifier.from_public_key(our_cert.public_key()).digest  # type: ignore[arg-type]
        try:
            given = base64.b64decode("".join((key_id.text or "").split()), validate=True)
        except ValueError:
            given = b""
        if given != ski:
            raise FailedDecryption("the message was encrypted for another certificate")
        return
    raise PolicyNoncompliance("EncryptedKey identifies the recipient key in an unsupported way")


def _decrypt(
    security: etree._Element,
    href: str,
    attachment: MimePart,
    our_key: rsa.RSAPrivateKey,
    our_cert: x509.Certificate,
) -> bytes | bytearray:
    return gcm_decrypt(_decrypt_key(security, href, our_key, our_cert), attachment.body)


def _decrypt_key(
    security: etree._Element,
    href: str,
    our_key: rsa.RSAPrivateKey,
    our_cert: x509.Certificate,
) -> bytes:
    """The AES key of the payload's EncryptedData, unwrapped with our key, after every check."""
    encrypted_data = [
        ed
        for ed in children(security, _XENC_ENCRYPTED_DATA)
        if (cipher_ref := child(ed, _XENC_CIPHER_DATA, _XENC_CIPHER_REFERENCE)) is not None
        and cipher_ref.get("URI") == "cid:" + href
    ]
    if not encrypted_data:
        raise FailedDecryption("the payload is not encrypted")
    if len(encrypted_data) > 1:
        raise PolicyNoncompliance("the payload is described by more than one EncryptedData")
    ed = encrypted_data[0]
    ed_id = ed.get("Id") or ""
    keys = [
        ek
        for ek in children(security, _XENC_ENCRYPTED_KEY)
        if any((dr.get("URI") or "") == "#" + ed_id for dr in children(ek, _XENC_REFERENCE_LIST, _XENC_DATA_REFERENCE))
    ]
    if not keys:
        ek_ref = child(ed, _DS_KEY_INFO, _WSSE_STR, _WSSE_REFERENCE)
        wanted = (ek_ref.get("URI") or "")[1:] if ek_ref is not None else None
        keys = [ek for ek in children(security, _XENC_ENCRYPTED_KEY) if wanted and ek.get("Id") == wanted]
    if len(keys) != 1:
        raise FailedDecryption("no single EncryptedKey for the payload")
    encrypted_key = keys[0]
    _key_is_ours(security, encrypted_key, our_cert)
    method = child(encrypted_key, _XENC_ENCRYPTION_METHOD)
    if method is None:
        raise PolicyNoncompliance("EncryptedKey has no EncryptionMethod")
    digest, mgf = _oaep_parameters(method)
    cipher_value_el = child(encrypted_key, _XENC_CIPHER_DATA, _XENC_CIPHER_VALUE)
    cipher_value = (cipher_value_el.text or "") if cipher_value_el is not None else ""
    try:
        wrapped = base64.b64decode("".join(cipher_value.split()), validate=True)
    except ValueError:
        raise FailedDecryption("EncryptedKey CipherValue is not base64") from None
    if isinstance(digest, hashes.SHA256) and isinstance(mgf, hashes.SHA256):
        aes_key = oaep_unwrap(our_key, wrapped)
    else:
        aes_key = oaep_unwrap(our_key, wrapped, digest, mgf)
    ed_method = child(ed, _XENC_ENCRYPTION_METHOD)
    algorithm = ed_method.get("Algorithm") if ed_method is not None else None
    expected_len = {AES128_GCM: 16, AES256_GCM: 32}.get(algorithm or "")
    if expected_len is None:
        raise PolicyNoncompliance(f"data encryption {algorithm!r} is not allowed")
    if len(aes_key) != expected_len:
        raise FailedDecryption("the unwrapped key has the wrong length")
    return aes_key


def parse_user_message(
    body: bytes,
    content_type: str,
    *,
    our_key: rsa.RSAPrivateKey,
    our_cert: x509.Certificate,
    max_payload_bytes: int = 200 * 1024 * 1024,
    payload_sink: Callable[[bytes], object] | None = None,
    require_sender_cn: bool = True,
    trace: ParseTrace | None = None,
) -> ReceivedMessage:
    """Parse, decrypt, verify and decompress one Peppol AS4 UserMessage.

    The signer's certificate is returned, not judged: the caller decides whether it trusts it
    (chain, validity, revocation). With ``payload_sink`` the decompressed payload is streamed
    there instead of being returned.
    """
    trace = trace if trace is not None else ParseTrace()
    soap = read_soap(body, content_type)
    trace.attachments = _attachment_list(soap)
    header, href, mime, compressed = user_message_header(soap)
    trace.header = header
    if len(soap.body):
        raise ValueInconsistent("the SOAP Body must be empty: the payload travels as an attachment")
    if soap.security is None:
        raise PolicyNoncompliance("the message has no wsse:Security header")
    if not soap.attachments:
        raise ValueInconsistent("the message has no payload attachment")
    if soap.attachments[0].content_id != href:
        raise ValueInconsistent(f"the first attachment is not the payload cid:{href}")
    if len(soap.attachments) > 1:
        raise ValueInconsistent("Peppol messages carry exactly one payload attachment")
    trace.decrypted = False
    plain = _decrypt(soap.security, href, soap.attachments[0], our_key, our_cert)
    trace.decrypted = True
    verified: VerifiedSignature = verify_signature(
        soap.root, soap.security, {"messaging": soap.messaging, "body": soap.body}, {href: plain}
    )
    trace.signature = verified
    if require_sender_cn and (signer := seat_id(verified.certificate)) != header.from_party:
        raise FailedAuthentication(f"eb:From/PartyId {header.from_party!r} is not the signer {signer!r}")
    chunks: list[bytes] = []
    sink = payload_sink or chunks.append
    if compressed:
        size = gunzip(plain, max_payload_bytes, sink)
    else:
        if len(plain) > max_payload_bytes:
            raise OtherError(f"payload exceeds {max_payload_bytes} bytes")
        sink(bytes(plain))
        size = len(plain)
    return ReceivedMessage(
        header=header,
        payload=None if payload_sink else b"".join(chunks),
        payload_size=size,
        payload_mime_type=mime,
        payload_content_id=href,
        compressed=compressed,
        signer_certificate=verified.certificate,
        references=verified.references,
        signed_references=[c14n(r) for r in verified.reference_elements],
        message_bytes=len(body),
    )
