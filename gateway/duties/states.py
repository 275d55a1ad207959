"""The lifecycle of a monthly report, as operators see it.

A report is ``built`` (stored, valid) or ``invalid`` (stored, breaks the reporting rules; never
sent); a valid one is ``queued`` for OpenPeppol's reporting participant, then ``sent`` (a
receipt came back) or ``failed`` (delivery gave up). A failed report is released and built
again; a report is rebuilt while it is not queued. The state is derived from the report row and
its outbound job, so the table below is what the code may do, not a column.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.duties.errors import ReportMoveError

__all__ = ["MOVES", "ReportState", "check_move", "report_state"]


class ReportState(StrEnum):
    BUILT = "built"
    INVALID = "invalid"
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


_REBUILT = frozenset({ReportState.BUILT, ReportState.INVALID})
MOVES: dict[ReportState, frozenset[ReportState]] = {
    ReportState.BUILT: _REBUILT | {ReportState.QUEUED},
    ReportState.INVALID: _REBUILT,
    ReportState.QUEUED: frozenset({ReportState.SENT, ReportState.FAILED}),
    ReportState.SENT: frozenset(),
    ReportState.FAILED: _REBUILT,
}

# The end states of the outbound job carrying a report (outbound_messages.state), as reports see them.
_DELIVERY = {"delivered": ReportState.SENT, "failed": ReportState.FAILED}


def check_move(old: ReportState, new: ReportState) -> ReportState:
    """``new`` when the lifecycle allows ``old`` → ``new``; otherwise :class:`ReportMoveError`."""
    if new not in MOVES[old]:
        raise ReportMoveError(old, new)
    return new


def report_state(valid: bool, outbound_id: int | None, outbound_state: str | None) -> ReportState:
    """built → (invalid) → queued → sent (receipt received) or failed."""
    if not valid:
        return ReportState.INVALID
    if outbound_id is None:
        return ReportState.BUILT
    return _DELIVERY.get(outbound_state or "", ReportState.QUEUED)
