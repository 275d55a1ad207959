"""Build a complete Peppol AS4 UserMessage: compress, sign, encrypt, frame in MIME."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from as4._canon import attr, text
from as4._crypto import gcm_encrypt_into, gcm_size, gzip_bytes, oaep_wrap
from as4._dsig import bst_xml, signature_xml
from as4._ids import uid, uids
from as4._mime import frame_with_slot
from as4._model import BuiltMessage, UserMessageHeader
from as4._ns import (
    AES128_GCM,
    DEFAULT_MPC,
    DS,
    EB,
    EXC_C14N,
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
    SWA_CONTENT_SIGNATURE,
    TOKEN_ENCRYPTED_KEY,
    WSSE,
    WSSE11,
    WSU,
    X509V3,
    XENC,
    XENC11,
)

__all__ = ["build_user_message", "format_timestamp", "new_message_id"]


def new_message_id(domain: str = "peppol-gateway") -> str:
    """A globally unique ebMS MessageId (RFC 2822 msg-id syntax without angle brackets)."""
    return f"{uuid.uuid4()}@{domain}"


def format_timestamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


MESSAGING_OPEN = f'<eb:Messaging xmlns:S12="{S12}" xmlns:eb="{EB}" xmlns:wsu="{WSU}" wsu:Id="'
_ROLES = (
    f"<eb:Role>{text(ROLE_INITIATOR)}</eb:Role></eb:From><eb:To>",
    f"<eb:Role>{text(ROLE_RESPONDER)}</eb:Role></eb:To></eb:PartyInfo>",
)


def messaging_xml(header: UserMessageHeader, messaging_id: str, part_href: str, compressed: bool) -> str:
    """The ``eb:Messaging`` element with its one UserMessage, in exclusive canonical form
    (:mod:`as4._canon`): its digest is the SHA-256 of this text."""
    h = header
    party = f'<eb:PartyId type="{attr(PEPPOL_PARTY_TYPE)}">'
    compression = f'<eb:Property name="CompressionType">{text(GZIP)}</eb:Property>' if compressed else ""
    return (
        f'{MESSAGING_OPEN}{attr(messaging_id)}" S12:mustUnderstand="true">'
        f'<eb:UserMessage mpc="{attr(DEFAULT_MPC)}"><eb:MessageInfo>'
        f"<eb:Timestamp>{text(format_timestamp(h.timestamp))}</eb:Timestamp>"
        f"<eb:MessageId>{text(h.message_id)}</eb:MessageId></eb:MessageInfo>"
        f"<eb:PartyInfo><eb:From>{party}{text(h.from_party)}</eb:PartyId>{_ROLES[0]}"
        f"{party}{text(h.to_party)}</eb:PartyId>{_ROLES[1]}"
        f"<eb:CollaborationInfo><eb:AgreementRef>{text(h.agreement)}</eb:AgreementRef>"
        f'<eb:Service type="{attr(h.service_type)}">{text(h.service)}</eb:Service>'
        f"<eb:Action>{text(h.action)}</eb:Action>"
        f"<eb:ConversationId>{text(h.conversation_id)}</eb:ConversationId></eb:CollaborationInfo>"
        f'<eb:MessageProperties><eb:Property name="originalSender" type="{attr(h.original_sender_type)}">'
        f"{text(h.original_sender)}</eb:Property>"
        f'<eb:Property name="finalRecipient" type="{attr(h.final_recipient_type)}">'
        f"{text(h.final_recipient)}</eb:Property></eb:MessageProperties>"
        f'<eb:PayloadInfo><eb:PartInfo href="{attr(part_href)}"><eb:PartProperties>'
        f'<eb:Property name="MimeType">application/xml</eb:Property>{compression}'
        "</eb:PartProperties></eb:PartInfo></eb:PayloadInfo></eb:UserMessage></eb:Messaging>"
    )


def body_xml(body_id: str) -> str:
    """An empty ``S12:Body`` with its wsu:Id, in exclusive canonical form."""
    return f'<S12:Body xmlns:S12="{S12}" xmlns:wsu="{WSU}" wsu:Id="{attr(body_id)}"></S12:Body>'


def encryption_xml(receiver_cert: x509.Certificate, wrapped_key: bytes, content_id: str, ids: list[str]) -> str:
    """BinarySecurityToken of the receiver's certificate, the EncryptedKey (RSA-OAEP with
    SHA-256 and MGF1-SHA256) and the EncryptedData (AES-128-GCM) of the attachment."""
    bst_id, ek_id, ed_id = (attr(i) for i in ids)
    return (
        bst_xml(receiver_cert, ids[0])
        + f'<xenc:EncryptedKey xmlns:xenc="{XENC}" Id="{ek_id}"><xenc:EncryptionMethod Algorithm="{RSA_OAEP}">'
        f'<ds:DigestMethod xmlns:ds="{DS}" Algorithm="{SHA256}"/>'
        f'<xenc11:MGF xmlns:xenc11="{XENC11}" Algorithm="{MGF1_SHA256}"/></xenc:EncryptionMethod>'
        f'<ds:KeyInfo xmlns:ds="{DS}"><wsse:SecurityTokenReference><wsse:Reference URI="#{bst_id}" '
        f'ValueType="{X509V3}"/></wsse:SecurityTokenReference></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>'
        f"{base64.b64encode(wrapped_key).decode()}</xenc:CipherValue></xenc:CipherData><xenc:ReferenceList>"
        f'<xenc:DataReference URI="#{ed_id}"/></xenc:ReferenceList></xenc:EncryptedKey>'
        f'<xenc:EncryptedData xmlns:xenc="{XENC}" Id="{ed_id}" MimeType="{GZIP}" Type="{SWA_CONTENT_ONLY}">'
        f'<xenc:EncryptionMethod Algorithm="{AES128_GCM}"/><ds:KeyInfo xmlns:ds="{DS}">'
        f'<wsse:SecurityTokenReference xmlns:wsse11="{WSSE11}" wsse11:TokenType="{TOKEN_ENCRYPTED_KEY}">'
        f'<wsse:Reference URI="#{ek_id}"/></wsse:SecurityTokenReference></ds:KeyInfo><xenc:CipherData>'
        f'<xenc:CipherReference URI="cid:{attr(content_id)}"><xenc:Transforms>'
        f'<ds:Transform xmlns:ds="{DS}" Algorithm="{SWA_CIPHERTEXT}"/></xenc:Transforms></xenc:CipherReference>'
        "</xenc:CipherData></xenc:EncryptedData>"
    )


XML_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
ENVELOPE_OPEN = (
    f'{XML_DECLARATION}<S12:Envelope xmlns:S12="{S12}"><S12:Header>'
    f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" S12:mustUnderstand="true">'
)


def user_message_soap(
    header: UserMessageHeader,
    content_id: str,
    compressed: bool,
    attachment_sha256: bytes,
    *,
    signing_key: rsa.RSAPrivateKey,
    signing_cert: x509.Certificate,
    receiver_cert: x509.Certificate,
    receiver_key: rsa.RSAPublicKey,
    aes_key: bytes,
) -> tuple[bytes, dict[str, str]]:
    """The SOAP part of a UserMessage: the AES key wrapped for the receiver, the signature over
    Messaging, Body and the (compressed) attachment. Returns it with URI -> base64 digest."""
    messaging_id, body_id, enc_bst, ek_id, ed_id, sig_bst, sig_id = uids(7)
    messaging = messaging_xml(header, f"id-{messaging_id}", "cid:" + content_id, compressed).encode()
    body = body_xml(f"id-{body_id}").encode()
    encryption = encryption_xml(
        receiver_cert, oaep_wrap(receiver_key, aes_key), content_id, [f"X509-{enc_bst}", f"EK-{ek_id}", f"ED-{ed_id}"]
    )
    signature, digests = signature_xml(
        [
            (f"#id-{messaging_id}", EXC_C14N, hashlib.sha256(messaging).digest()),
            (f"#id-{body_id}", EXC_C14N, hashlib.sha256(body).digest()),
            ("cid:" + content_id, SWA_CONTENT_SIGNATURE, attachment_sha256),
        ],
        signing_key,
        f"X509-{sig_bst}",
        f"SIG-{sig_id}",
    )
    security = f"{ENVELOPE_OPEN}{encryption}{bst_xml(signing_cert, f'X509-{sig_bst}')}{signature}</wsse:Security>"
    return b"".join((security.encode(), messaging, b"</S12:Header>", body, b"</S12:Envelope>")), digests


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
    content_id = content_id or f"sbd-{uid()}@peppol-gateway"
    header = to_milliseconds(header)
    if compress:
        gz = gzip_bytes(payload)
        plain: bytes | bytearray = gz.data
        sha = gz.sha256
    else:
        plain, sha = payload, hashlib.sha256(payload).digest()
    receiver_key = receiver_cert.public_key()
    if not isinstance(receiver_key, rsa.RSAPublicKey):
        raise ValueError("the receiver's certificate does not hold an RSA key")
    aes_key = os.urandom(16)
    soap, digests = user_message_soap(
        header,
        content_id,
        compress,
        sha,
        signing_key=signing_key,
        signing_cert=signing_cert,
        receiver_cert=receiver_cert,
        receiver_key=receiver_key,
        aes_key=aes_key,
    )
    body_bytes, slot, content_type = frame_with_slot(soap, content_id, "application/octet-stream", gcm_size(len(plain)))
    gcm_encrypt_into(aes_key, plain, slot)
    slot.release()
    return BuiltMessage(header, body_bytes, content_type, digests, content_id)


def to_milliseconds(header: UserMessageHeader) -> UserMessageHeader:
    """The header with its timestamp in UTC, cut to the milliseconds the wire carries, so the
    header kept for the receipt check is the one sent."""
    stamp = header.timestamp.astimezone(UTC)
    return replace(header, timestamp=stamp.replace(microsecond=stamp.microsecond // 1000 * 1000))
