"""The outcome ladder of one delivery attempt, as pure functions.

What went wrong (a discovery error, an AS4 error, a bad receipt, a permanent or transient
failure) becomes a :class:`~gateway.outbound.errors.DeliveryError` (:func:`failure_of`); a
permanent one fails the job, a transient one is retried with exponential backoff until the
job's time window closes (:func:`after_failure`). The worker records what these decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import tenacity

import as4
import smp
from gateway.documents.envelope import SbdhError
from gateway.outbound.errors import DeliveryError, Permanent, Transient
from gateway.outbound.states import OutboundState

__all__ = [
    "Delivered",
    "Failed",
    "Retry",
    "after_failure",
    "backoff",
    "discovery_failure",
    "failure_of",
    "for_kind",
    "turns_to_fallback",
]

DUPLICATE = "EBMS:4001"

_DISCOVERY_CODES: dict[type[Exception], str] = {
    smp.NotRegistered: "receiver_not_registered",
    smp.ParticipantUnknown: "receiver_unknown",
    smp.DocumentTypeNotSupported: "document_type_not_supported",
    smp.EndpointNotActive: "endpoint_not_active",
    smp.SignatureInvalid: "smp_signature_invalid",
    smp.UntrustedSmpCertificate: "smp_untrusted",
    smp.DnsFailure: "dns_failure",
    smp.SmpUnavailable: "smp_unavailable",
    smp.InsecureEndpoint: "endpoint_not_https",
}


@dataclass(frozen=True)
class Delivered:
    """The receiver has the document (a verified receipt, or it reports a duplicate)."""

    reason: str
    state: OutboundState = OutboundState.DELIVERED


@dataclass(frozen=True)
class Failed:
    code: str
    reason: str
    gave_up: bool = False  # transient failures until the window closed
    state: OutboundState = OutboundState.FAILED


@dataclass(frozen=True)
class Retry:
    code: str
    reason: str
    delay: float
    next_attempt_at: datetime
    state: OutboundState = OutboundState.RETRYING


def backoff(attempt: int, *, initial: float, maximum: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (tenacity's exponential schedule)."""
    wait = tenacity.wait_exponential(multiplier=initial, min=initial, max=maximum)
    state = tenacity.RetryCallState(retry_object=tenacity.AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return float(wait(state))


def discovery_failure(exc: smp.DiscoveryError) -> DeliveryError:
    """A failed SML/SMP lookup: transient when the lookup may work later."""
    code = next((_DISCOVERY_CODES[cls] for cls in type(exc).__mro__ if cls in _DISCOVERY_CODES), "discovery_failed")
    return Transient(code, str(exc)) if exc.retryable else Permanent(code, str(exc))


# Discovery failures that mean "the receiver cannot be found (yet)": permanent for a business
# document, but an MLS is owed whatever happens (MLS-4), so it waits in the queue and is
# tried again over the retry window instead of failing.
UNRESOLVED = frozenset(
    {"receiver_not_registered", "receiver_unknown", "document_type_not_supported", "endpoint_not_active"}
)


def for_kind(error: DeliveryError, kind: str) -> DeliveryError:
    """What a failure means for a job of ``kind``: an MLS whose receiver cannot be resolved is
    retried (transient) rather than failed; everything else as :func:`failure_of` said."""
    if kind == "mls" and isinstance(error, Permanent) and error.code in UNRESOLVED:
        return Transient(error.code, f"{error.reason} (an MLS is retried until its receiver is found)")
    return error


def turns_to_fallback(error: DeliveryError, decided: Failed | Retry) -> bool:
    """A job with a fallback receiver turns to it when its receiver cannot be resolved or
    refuses the message (a permanent failure), or when retrying it ran out of time."""
    return isinstance(error, Permanent) or (isinstance(decided, Failed) and decided.gave_up)


def is_duplicate(exc: as4.EbmsErrorReceived) -> bool:
    """The receiver answers a resend of a message it has with EBMS:4001: it was delivered."""
    return any(e.code == DUPLICATE for e in exc.errors)


def failure_of(exc: Exception) -> DeliveryError | None:
    """What an exception raised by an attempt means; None for one that is not an outcome."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, as4.EbmsErrorReceived):
        failures = [e for e in exc.errors if e.severity.lower() == "failure"]
        code = "ebms_" + failures[0].code.replace("EBMS:", "") if failures else "ebms_warning"
        return Permanent(code, str(exc)) if failures else Transient(code, str(exc))
    if isinstance(exc, as4.SendError):
        return Transient(type(exc).__name__, str(exc))
    if isinstance(exc, as4.As4Error):  # an invalid receipt: the document may have arrived
        return Transient("invalid_receipt", exc.reason)
    if isinstance(exc, (SbdhError, smp.IdentifierError)):
        return Permanent("invalid_document", str(exc))
    return None


def after_failure(
    error: DeliveryError, *, attempts: int, give_up_at: datetime, now: datetime, delay: float
) -> Failed | Retry:
    """Fail at once, or retry after ``delay`` unless that is past the job's window."""
    if isinstance(error, Permanent):
        return Failed(error.code, error.reason)
    next_at = now + timedelta(seconds=delay)
    if next_at > give_up_at:
        return Failed(error.code, f"gave up after {attempts} attempts: {error.reason}", gave_up=True)
    return Retry(error.code, f"{error.reason}; next attempt in {delay:.1f}s", delay, next_at)
