"""Typed errors, each carrying its ebMS error code, like asyncpg's exceptions carry SQLSTATE.

Raised by the parsing and verification code and turned into ebMS Error signals by the caller
(``build_error_signal``). ``detail`` goes into ``eb:ErrorDetail``; ``PEPPOL:NOT_SERVICED`` is one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from as4._model import ErrorSignal

__all__ = [
    "As4Error",
    "DecompressionFailure",
    "DeliveryFailure",
    "DuplicateDetected",
    "EbmsErrorReceived",
    "FailedAuthentication",
    "FailedDecryption",
    "FeatureNotSupported",
    "HttpStatusError",
    "InvalidHeader",
    "InvalidReceipt",
    "MimeInconsistency",
    "MissingReceipt",
    "NotServiced",
    "OtherError",
    "PolicyNoncompliance",
    "ProcessingModeMismatch",
    "SendError",
    "TransportError",
    "ValueInconsistent",
    "ValueNotRecognized",
    "error_for_code",
]


class As4Error(Exception):
    """A failure with an ebMS error code (``EBMS:nnnn``)."""

    code: ClassVar[str] = "EBMS:0004"
    short_description: ClassVar[str] = "Other"
    category: ClassVar[str] = "Content"
    origin: ClassVar[str] = "ebMS"
    severity: ClassVar[str] = "failure"

    def __init__(self, reason: str, *, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code} {self.short_description}: {self.reason}"


class ValueNotRecognized(As4Error):
    code, short_description = "EBMS:0001", "ValueNotRecognized"


class FeatureNotSupported(As4Error):
    code, short_description, category = "EBMS:0008", "FeatureNotSupported", "Unpackaging"


class ValueInconsistent(As4Error):
    code, short_description = "EBMS:0003", "ValueInconsistent"


class OtherError(As4Error):
    code, short_description = "EBMS:0004", "Other"


class NotServiced(OtherError):
    """The receiver is not served here for this document type and process (Peppol §4.4)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, detail="PEPPOL:NOT_SERVICED")


class MimeInconsistency(As4Error):
    code, short_description, category = "EBMS:0007", "MimeInconsistency", "Unpackaging"


class InvalidHeader(As4Error):
    code, short_description, category = "EBMS:0009", "InvalidHeader", "Unpackaging"


class ProcessingModeMismatch(As4Error):
    code, short_description, category = "EBMS:0010", "ProcessingModeMismatch", "Processing"


class FailedAuthentication(As4Error):
    code, short_description, category, origin = (
        "EBMS:0101", "FailedAuthentication", "Processing", "security",
    )  # fmt: skip


class FailedDecryption(As4Error):
    code, short_description, category, origin = (
        "EBMS:0102", "FailedDecryption", "Processing", "security",
    )  # fmt: skip


class PolicyNoncompliance(As4Error):
    code, short_description, category, origin = (
        "EBMS:0103", "PolicyNoncompliance", "Processing", "security",
    )  # fmt: skip


class DeliveryFailure(As4Error):
    code, short_description, category, origin = (
        "EBMS:0202", "DeliveryFailure", "Communication", "reliability",
    )  # fmt: skip


class MissingReceipt(As4Error):
    code, short_description, category = "EBMS:0301", "MissingReceipt", "Communication"


class InvalidReceipt(As4Error):
    code, short_description, category = "EBMS:0302", "InvalidReceipt", "Communication"


class DecompressionFailure(As4Error):
    code, short_description, category = "EBMS:0303", "DecompressionFailure", "Communication"


class DuplicateDetected(As4Error):
    code, short_description = "EBMS:4001", "DuplicateDetected"


_BY_CODE: dict[str, type[As4Error]] = {
    cls.code: cls
    for cls in (
        ValueNotRecognized, FeatureNotSupported, ValueInconsistent, OtherError,
        MimeInconsistency, InvalidHeader, ProcessingModeMismatch, FailedAuthentication,
        FailedDecryption, PolicyNoncompliance, DeliveryFailure, MissingReceipt, InvalidReceipt,
        DecompressionFailure, DuplicateDetected,
    )
}  # fmt: skip


def error_for_code(code: str) -> type[As4Error]:
    """The exception class for an ebMS code (``OtherError`` for codes we do not know)."""
    return _BY_CODE.get(code, OtherError)


class SendError(Exception):
    """Sending a message did not end in a valid receipt. ``retryable`` guides the caller."""

    retryable: bool = False


class TransportError(SendError):
    """Connection failure, TLS failure or timeout: the message may not have arrived."""

    retryable = True


class HttpStatusError(SendError):
    """The receiver answered with an HTTP error and no ebMS signal."""

    def __init__(self, status: int, body_excerpt: str) -> None:
        super().__init__(f"HTTP {status}: {body_excerpt}")
        self.status = status
        self.retryable = status >= 500 or status in (408, 429)


class EbmsErrorReceived(SendError):
    """The receiver answered with ebMS Error signal(s)."""

    def __init__(self, errors: list[ErrorSignal], signed: bool = False) -> None:
        self.errors = errors
        self.signed = signed
        super().__init__("; ".join(str(e) for e in errors))
        self.retryable = False
