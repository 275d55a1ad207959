"""The lifecycle of an outbound job, as ``outbound_messages.state`` stores it.

queued → sending → delivered | failed, with retrying between attempts. A claim takes a queued
or retrying job (or a sending one whose worker's lease ran out) to sending; the attempt's
outcome moves it on. Delivered and failed are final. :data:`ALLOWED` is the one table of
moves; :func:`check_move` guards every place that changes a job's state.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ALLOWED", "FINAL", "IN_FLIGHT", "WAITING", "IllegalMove", "OutboundState", "check_move"]


class OutboundState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"


# An audit line only (the job itself stays retrying): put back, waiting for its endpoint.
WAITING = "waiting"

ALLOWED: dict[OutboundState, frozenset[OutboundState]] = {
    OutboundState.QUEUED: frozenset({OutboundState.SENDING}),
    OutboundState.RETRYING: frozenset({OutboundState.SENDING}),
    # SENDING → SENDING: a job whose worker died is claimed again after its lease.
    OutboundState.SENDING: frozenset(
        {OutboundState.SENDING, OutboundState.RETRYING, OutboundState.DELIVERED, OutboundState.FAILED}
    ),
    OutboundState.DELIVERED: frozenset(),
    OutboundState.FAILED: frozenset(),
}

# Waiting for (or in) an attempt: what the queue still holds.
IN_FLIGHT: tuple[OutboundState, ...] = (OutboundState.QUEUED, OutboundState.RETRYING, OutboundState.SENDING)
FINAL: tuple[OutboundState, ...] = (OutboundState.DELIVERED, OutboundState.FAILED)


class IllegalMove(RuntimeError):
    """A state change the lifecycle does not allow: a bug, not a delivery outcome."""

    def __init__(self, old: OutboundState, new: OutboundState) -> None:
        super().__init__(f"an outbound job does not move from {old} to {new}")
        self.old = old
        self.new = new


def check_move(old: OutboundState | str, new: OutboundState | str) -> OutboundState:
    """The new state, when moving there from ``old`` is allowed; :class:`IllegalMove` if not."""
    before, after = OutboundState(old), OutboundState(new)
    if after not in ALLOWED[before]:
        raise IllegalMove(before, after)
    return after
