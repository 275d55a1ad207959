"""The lifecycle of an outbound job, as ``outbound_messages.state`` stores it.

queued → sending → delivered | failed, with retrying between attempts. A claim takes a queued
or retrying job (or a sending one whose worker's lease ran out) to sending; the attempt's
outcome moves it on. Delivered and failed are final. :data:`ALLOWED` is the one table of
moves; :func:`check_move` guards every place that changes a job's state.

A receiving endpoint's circuit breaker has a lifecycle of its own, :class:`CircuitState`, with
its table :data:`CIRCUIT_ALLOWED` and :func:`check_circuit_move`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ALLOWED",
    "CIRCUIT_ALLOWED",
    "FINAL",
    "IN_FLIGHT",
    "WAITING",
    "CircuitState",
    "IllegalMove",
    "OutboundState",
    "check_circuit_move",
    "check_move",
]


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


class CircuitState(StrEnum):
    """A receiving endpoint's circuit breaker (``endpoint_circuits.state``), not a job's state."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


CIRCUIT_ALLOWED: dict[CircuitState, frozenset[CircuitState]] = {
    # Transport failures in a row reached the threshold.
    CircuitState.CLOSED: frozenset({CircuitState.OPEN}),
    # The cooldown is over and one process claimed the probe; or a delivery that started
    # before the circuit opened succeeded.
    CircuitState.OPEN: frozenset({CircuitState.HALF_OPEN, CircuitState.CLOSED}),
    # The probe (or any delivery) succeeded, or failed; HALF_OPEN → HALF_OPEN: the probe of a
    # process that died is claimed by another after its probe lease.
    CircuitState.HALF_OPEN: frozenset({CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN}),
}


class IllegalMove(RuntimeError):
    """A state change the lifecycle does not allow: a bug, not a delivery outcome."""

    def __init__(self, old: StrEnum, new: StrEnum) -> None:
        what = "an endpoint's circuit" if isinstance(old, CircuitState) else "an outbound job"
        super().__init__(f"{what} does not move from {old} to {new}")
        self.old = old
        self.new = new


def check_move(old: OutboundState | str, new: OutboundState | str) -> OutboundState:
    """The new state, when moving there from ``old`` is allowed; :class:`IllegalMove` if not."""
    before, after = OutboundState(old), OutboundState(new)
    if after not in ALLOWED[before]:
        raise IllegalMove(before, after)
    return after


def check_circuit_move(old: CircuitState | str, new: CircuitState | str) -> CircuitState:
    """The new circuit state, when its lifecycle allows the move; :class:`IllegalMove` if not."""
    before, after = CircuitState(old), CircuitState(new)
    if after not in CIRCUIT_ALLOWED[before]:
        raise IllegalMove(before, after)
    return after
