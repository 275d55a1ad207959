"""The two lifecycles of a received message.

``inbound_messages.status``, whether it is in the company's mailbox: ``stored`` (in it),
``pending`` (held out of it until the inbound processor validated it), then ``stored`` if
accepted or ``rejected``.

``inbound_messages.processing``, what follows the receipt: ``pending`` (validation, an MLS or
linking an answer still to do) until the inbound processor made it ``done``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import overload

from gateway.inbound.errors import InboundMoveError

__all__ = ["PROCESSING_MOVES", "STATUS_MOVES", "MessageStatus", "ProcessingState", "check_move"]


class MessageStatus(StrEnum):
    STORED = "stored"
    PENDING = "pending"  # held out of the mailbox
    REJECTED = "rejected"


class ProcessingState(StrEnum):
    PENDING = "pending"
    DONE = "done"


STATUS_MOVES: dict[MessageStatus, frozenset[MessageStatus]] = {
    MessageStatus.PENDING: frozenset({MessageStatus.STORED, MessageStatus.REJECTED}),
    MessageStatus.STORED: frozenset({MessageStatus.STORED, MessageStatus.REJECTED}),
    MessageStatus.REJECTED: frozenset(),
}

PROCESSING_MOVES: dict[ProcessingState, frozenset[ProcessingState]] = {
    ProcessingState.PENDING: frozenset({ProcessingState.DONE}),
    ProcessingState.DONE: frozenset(),
}


@overload
def check_move(old: MessageStatus, new: MessageStatus) -> MessageStatus: ...
@overload
def check_move(old: ProcessingState, new: ProcessingState) -> ProcessingState: ...
def check_move(old: MessageStatus | ProcessingState, new: MessageStatus | ProcessingState) -> StrEnum:
    """``new`` when its lifecycle allows ``old`` → ``new``; otherwise :class:`InboundMoveError`."""
    allowed: frozenset[StrEnum]
    if isinstance(old, MessageStatus) and isinstance(new, MessageStatus):
        allowed = frozenset(STATUS_MOVES[old])
    elif isinstance(old, ProcessingState) and isinstance(new, ProcessingState):
        allowed = frozenset(PROCESSING_MOVES[old])
    else:
        allowed = frozenset()
    if new not in allowed:
        raise InboundMoveError(old, new)
    return new
