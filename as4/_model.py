"""Typed values going in and out of the AS4 layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from as4._ns import PARTICIPANT_SCHEME, PEPPOL_AGREEMENT, PROCESS_SCHEME

__all__ = [
    "BuiltMessage",
    "ErrorSignal",
    "Receipt",
    "ReceivedMessage",
    "ReferenceCheck",
    "UserMessageHeader",
]


@dataclass(frozen=True)
class UserMessageHeader:
    """The ebMS UserMessage values of one Peppol exchange."""

    message_id: str
    conversation_id: str
    timestamp: datetime
    from_party: str  # sender AP seat id (CN of its certificate)
    to_party: str  # receiver AP seat id
    service: str  # process identifier value
    action: str  # document type identifier with its scheme: "scheme::value"
    original_sender: str  # C1 participant id, e.g. "0192:991825827"
    final_recipient: str  # C4 participant id
    service_type: str = PROCESS_SCHEME
    original_sender_type: str = PARTICIPANT_SCHEME
    final_recipient_type: str = PARTICIPANT_SCHEME
    agreement: str = PEPPOL_AGREEMENT


@dataclass(frozen=True)
class ReferenceCheck:
    """One ``ds:Reference`` of a verified signature and what it covered."""

    uri: str
    target: str  # "messaging", "body" or "attachment"
    digest: str  # base64 DigestValue
    valid: bool | None  # None: content not available to check (encrypted, no key)


@dataclass(frozen=True)
class BuiltMessage:
    """An AS4 message ready for HTTP: ``body`` with ``content_type``."""

    header: UserMessageHeader
    body: bytes | bytearray
    content_type: str
    digests: dict[str, str]  # reference URI -> base64 digest, for checking the receipt
    payload_content_id: str


@dataclass(frozen=True)
class ReceivedMessage:
    """A parsed, decrypted and signature-verified UserMessage."""

    header: UserMessageHeader
    payload: bytes | None  # decompressed; None when written to a sink
    payload_size: int
    payload_mime_type: str
    payload_content_id: str
    compressed: bool
    signer_certificate: x509.Certificate
    references: list[ReferenceCheck]
    signed_references: list[bytes]  # each ds:Reference in exclusive canonical form, for the receipt's NRI
    message_bytes: int


@dataclass(frozen=True)
class Receipt:
    """A parsed and signature-verified Receipt signal."""

    message_id: str
    ref_to_message_id: str
    timestamp: datetime | None
    signer_certificate: x509.Certificate
    digests: dict[str, str]  # NonRepudiationInformation: URI -> base64 digest
    raw: bytes = field(repr=False)
    # each ds:Reference of the receipt's own signature and what it covered, all checked
    references: list[ReferenceCheck] = field(default_factory=list)


@dataclass(frozen=True)
class ErrorSignal:
    """One ``eb:Error`` of an Error signal."""

    code: str
    severity: str
    short_description: str = ""
    description: str = ""
    detail: str = ""
    category: str = ""
    origin: str = ""
    ref_to_message_id: str | None = None

    def __str__(self) -> str:
        text = f"{self.code} {self.short_description}".strip()
        if self.detail:
            text += f" [{self.detail}]"
        if self.description:
            text += f": {self.description}"
        return text
