"""What can go wrong in the duties domain (validation, responses, reporting, archive), under one
root.

::

    DutiesError
    ├── ResponseError       a business response or MLS/MLR cannot be built as asked (also a ValueError)
    ├── ReportError         a TSR/EUSR cannot be built or sent; ``code`` is stable
    ├── ArchiveError        the archive cannot be read or written
    └── ReportMoveError     a report asked to move to a state its lifecycle forbids
"""

from __future__ import annotations

from gateway.core.errors import GatewayError

__all__ = ["ArchiveError", "DutiesError", "ReportError", "ReportMoveError", "ResponseError"]


class DutiesError(GatewayError):
    """The root of every duties error, so a caller can catch the domain as a whole."""


class ResponseError(DutiesError, ValueError):
    """A response cannot be built as asked; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ReportError(DutiesError):
    """A report cannot be built or sent; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ArchiveError(DutiesError):
    """The archive cannot be read or written."""


class ReportMoveError(DutiesError):
    """A report state change the lifecycle does not allow (a programming error)."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(f"a report cannot move from {old} to {new}")
        self.old = old
        self.new = new
