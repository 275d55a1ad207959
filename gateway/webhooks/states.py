"""The lifecycle of a webhook delivery (``webhook_deliveries.status``).

``pending`` is tried when due; an answer of 200/201/204 ends it ``delivered``, a failure keeps it
``pending`` for the next attempt until its give-up time, then ``failed``. A retry through the API
puts any delivery back to ``pending``.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.webhooks.errors import DeliveryMoveError

__all__ = ["MOVES", "DeliveryState", "check_move"]


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


MOVES: dict[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.PENDING: frozenset({DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.FAILED}),
    DeliveryState.DELIVERED: frozenset({DeliveryState.PENDING}),
    DeliveryState.FAILED: frozenset({DeliveryState.PENDING}),
}


def check_move(old: DeliveryState, new: DeliveryState) -> DeliveryState:
    """``new`` when the lifecycle allows ``old`` → ``new``; otherwise :class:`DeliveryMoveError`."""
    if new not in MOVES[old]:
        raise DeliveryMoveError(old, new)
    return new
