"""The outbound package's exceptions, under one root.

::

    OutboundError
    ├── SubmissionError (also ValueError)   a document cannot be submitted; ``field`` says why
    ├── DuplicateDocument                   the same document was submitted recently (``earlier_job_id``)
    └── DeliveryError                       an attempt did not deliver (``code``, ``reason``)
        ├── Permanent                       trying again cannot succeed: the job fails now
        └── Transient                       it may succeed later: retry until the window closes

:class:`~gateway.outbound.states.IllegalMove` is not here on purpose: it is a bug, not an
outcome anyone handles.
"""

from __future__ import annotations

from gateway.core.errors import GatewayError

__all__ = ["DeliveryError", "DuplicateDocument", "OutboundError", "Permanent", "SubmissionError", "Transient"]


class OutboundError(GatewayError):
    """Anything the outbound path reports as an expected failure."""


class SubmissionError(OutboundError, ValueError):
    """A document cannot be submitted; ``field`` names what is wrong or missing."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DuplicateDocument(OutboundError):
    """The document (same sender, receiver, type, ID and IssueDate) was submitted within the
    duplicate window and that job has not failed: sending it again would deliver it twice."""

    def __init__(self, earlier_job_id: int) -> None:
        super().__init__(f"the document was submitted already as job {earlier_job_id}")
        self.earlier_job_id = earlier_job_id


class DeliveryError(OutboundError):
    """One delivery attempt failed; ``code`` is stable (recorded as the job's error code)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Permanent(DeliveryError):
    """Delivery cannot succeed by trying again."""


class Transient(DeliveryError):
    """Delivery may succeed later."""
