"""Build a complete Peppol AS4 UserMessage: compress, sign, encrypt, frame in MIME."""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from as4._crypto import gcm_encrypt_into, gcm_size, gzip_bytes, oaep_wrap
from as4._dsig import add_bst, sign
from as4._ids import uid as _uid
from as4._mime import frame_with_slot
from as4._model import BuiltMessage, UserMessageHeader
from as4._ns import (
    AES128_GCM,
    DEFAULT_MPC,
    DS,
    EB,
    GZIP,
    MGF1_SHA256,
    PEPPOL_PARTY_TYPE,
    ROLE_INITIATOR,
    ROLE_RESPONDER,
    RSA_OAEP,
    S12,
    SHA256,
    SWA_CIPHERTEXT,
    SWA_CONTENT_ONLY,
    TOKEN_ENCRYPTED_KEY,
    WSSE,
    WSSE11,
    WSU,
    X509V3,
    XENC,
    XENC11,
    q,
)

__all__ = ["build_user_message", "format_timestamp", "new_message_id"]


def new_message_id(domain: str = "peppol-gateway") -> str:
    """A globally unique ebMS MessageId (RFC 2822 msg-id syntax without angle brackets)."""
    return f"{uuid.uuid4()}@{domain}"


def format_timestamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(parent: etree._Element, tag: str, text: str, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, q(EB, tag), attrs)
    el.text = text
    return el


def messaging_header(header: UserMessageHeader, part_href: str, compressed: bool) -> etree._Element:
    """The ``eb:Messaging`` element with its one UserMessage."""
    messaging = etree.Element(q(EB, "Messaging"), nsmap={"eb": EB, "wsu": WSU, "S12": S12})
    messaging.set(q(S12, "mustUnderstand"), "true")
    messaging.set(q(WSU, "Id"), f"id-{_uid()}")
    user = etree.SubElement(messaging, q(EB, "UserMessage"), {"mpc": DEFAULT_MPC})
    info = etree.SubElement(user, q(EB, "MessageInfo"))
    _text(info, "Timestamp", format_timestamp(header.timestamp))
    _text(info, "MessageId", header.message_id)
    party = etree.SubElement(user, q(EB, "PartyInfo"))
    sender = etree.SubElement(party, q(EB, "From"))
    _text(sender, "PartyId", header.from_party, type=PEPPOL_PARTY_TYPE)
    _text(sender, "Role", ROLE_INITIATOR)
    receiver = etree.SubElement(party, q(EB, "To"))
    _text(receiver, "PartyId", header.to_party, type=PEPPOL_PARTY_TYPE)
    _text(receiver, "Role", ROLE_RESPONDER)
    collab = etree.SubElement(user, q(EB, "CollaborationInfo"))
    _text(collab, "AgreementRef", header.agreement)
    _text(collab, "Service", header.service, type=header.service_type)
    _text(collab, "Action", header.action)
    _text(collab, "ConversationId", header.conversation_id)
    props = etree.SubElement(user, q(EB, "MessageProperties"))
    _text(
        props,
        "Property",
        header.original_sender,
        name="originalSender",
        type=header.original_sender_type,
    )
    _text(
        props,
        "Property",
        header.final_recipient,
        name="finalRecipient",
        type=header.final_recipient_type,
    )
    payload = etree.SubElement(user, q(EB, "PayloadInfo"))
    part = etree.SubElement(payload, q(EB, "PartInfo"), {"href": part_href})
    part_props = etree.SubElement(part, q(EB, "PartProperties"))
    _text(part_props, "Property", "application/xml", name="MimeType")
    if compressed:
        _text(part_props, "Property", GZIP, name="CompressionType")
    return messaging


def _encryption_header(
    security: etree._Element,
    receiver_cert: x509.Certificate,
    wrapped_key: bytes,
    content_id: str,
) -> None:
    bst_id = f"X509-{_uid()}"
    ek_id = f"EK-{_uid()}"
    ed_id = f"ED-{_uid()}"
    add_bst(security, receiver_cert, bst_id)
    ek = etree.SubElement(security, q(XENC, "EncryptedKey"), {"Id": ek_id}, nsmap={"xenc": XENC})
    method = etree.SubElement(ek, q(XENC, "EncryptionMethod"), {"Algorithm": RSA_OAEP})
    etree.SubElement(method, q(DS, "DigestMethod"), {"Algorithm": SHA256}, nsmap={"ds": DS})
    etree.SubElement(method, q(XENC11, "MGF"), {"Algorithm": MGF1_SHA256}, nsmap={"xenc11": XENC11})
    key_info = etree.SubElement(ek, q(DS, "KeyInfo"), nsmap={"ds": DS})
    str_el = etree.SubElement(key_info, q(WSSE, "SecurityTokenReference"))
    etree.SubElement(str_el, q(WSSE, "Reference"), {"URI": "#" + bst_id, "ValueType": X509V3})
    cipher_data = etree.SubElement(ek, q(XENC, "CipherData"))
    etree.SubElement(cipher_data, q(XENC, "CipherValue")).text = base64.b64encode(wrapped_key).decode()
    refs = etree.SubElement(ek, q(XENC, "ReferenceList"))
    etree.SubElement(refs, q(XENC, "DataReference"), {"URI": "#" + ed_id})

    ed = etree.SubElement(
        security,
        q(XENC, "EncryptedData"),
        {"Id": ed_id, "MimeType": GZIP, "Type": SWA_CONTENT_ONLY},
        nsmap={"xenc": XENC},
    )
    etree.SubElement(ed, q(XENC, "EncryptionMethod"), {"Algorithm": AES128_GCM})
    ed_key_info = etree.SubElement(ed, q(DS, "KeyInfo"), nsmap={"ds": DS})
    ed_str = etree.SubElement(
        ed_key_info,
        q(WSSE, "SecurityTokenReference"),
        {q(WSSE11, "TokenType"): TOKEN_ENCRYPTED_KEY},
        nsmap={"wsse11": WSSE11},
    )
    etree.SubElement(ed_str, q(WSSE, "Reference"), {"URI": "#" + ek_id})
    ed_cipher = etree.SubElement(ed, q(XENC, "CipherData"))
    ref = etree.SubElement(ed_cipher, q(XENC, "CipherReference"), {"URI": "cid:" + content_id})
    transforms = etree.SubElement(ref, q(XENC, "Transforms"))
    etree.SubElement(transforms, q(DS, "Transform"), {"Algorithm": SWA_CIPHERTEXT}, nsmap={"ds": DS})


def envelope_skeleton() -> tuple[etree._Element, etree._Element, etree._Element, etree._Element]:
    """``(Envelope, Header, wsse:Security, Body)`` with ids and mustUnderstand set."""
    envelope = etree.Element(q(S12, "Envelope"), nsmap={"S12": S12})
    soap_header = etree.SubElement(envelope, q(S12, "Header"))
    security = etree.SubElement(soap_header, q(WSSE, "Security"), nsmap={"wsse": WSSE, "wsu": WSU})
    security.set(q(S12, "mustUnderstand"), "true")
    body = etree.SubElement(envelope, q(S12, "Body"), nsmap={"wsu": WSU})
    body.set(q(WSU, "Id"), f"id-{_uid()}")
    return envelope, soap_header, security, body


def build_user_message(
    header: UserMessageHeader,
    payload: bytes,
    *,
    signing_key: rsa.RSAPrivateKey,
    signing_cert: x509.Certificate,
    receiver_cert: x509.Certificate,
    compress: bool = True,
    content_id: str | None = None,
) -> BuiltMessage:
    """Build the HTTP body and Content-Type of a signed, encrypted Peppol AS4 UserMessage.

    ``payload`` is the Peppol business message (SBDH + document). Order: gzip, sign (over the
    gzip bytes), encrypt (AES-128-GCM, key wrapped with RSA-OAEP for ``receiver_cert``).
    """
    content_id = content_id or f"sbd-{_uid()}@peppol-gateway"
    stamp = header.timestamp.astimezone(UTC)
    header = replace(header, timestamp=stamp.replace(microsecond=stamp.microsecond // 1000 * 1000))
    if compress:
        gz = gzip_bytes(payload)
        plain: bytes | bytearray = gz.data
        sha = gz.sha256
    else:
        import hashlib

        plain, sha = payload, hashlib.sha256(payload).digest()

    envelope, soap_header, security, body = envelope_skeleton()
    messaging = messaging_header(header, "cid:" + content_id, compress)
    soap_header.append(messaging)

    aes_key = os.urandom(16)
    receiver_key = receiver_cert.public_key()
    if not isinstance(receiver_key, rsa.RSAPublicKey):
        raise ValueError("the receiver's certificate does not hold an RSA key")
    _encryption_header(security, receiver_cert, oaep_wrap(receiver_key, aes_key), content_id)
    sig_bst = f"X509-{_uid()}"
    add_bst(security, signing_cert, sig_bst)
    digests = sign(
        security,
        [messaging, body],
        [(content_id, sha)],
        signing_key,
        sig_bst,
        f"SIG-{_uid()}",
    )
    soap = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    body_bytes, slot, content_type = frame_with_slot(soap, content_id, "application/octet-stream", gcm_size(len(plain)))
    gcm_encrypt_into(aes_key, plain, slot)
    slot.release()
    return BuiltMessage(header, body_bytes, content_type, digests, content_id)
