"""What can go wrong in the inbound domain, under one root.

::

    InboundError
    ├── InboundMoveError    a received message asked to move to a state its lifecycle forbids
    └── AlreadyProcessed    another worker finished the message first (the transaction rolls back)

A refusal of an AS4 message itself is an ``as4.As4Error`` (it becomes the signed ebMS Error).
"""

from __future__ import annotations

from gateway.core.errors import GatewayError

__all__ = ["AlreadyProcessed", "InboundError", "InboundMoveError"]


class InboundError(GatewayError):
    """The root of every inbound error, so a caller can catch the domain as a whole."""


class InboundMoveError(InboundError):
    """A state change the lifecycle does not allow (a programming error)."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(f"a received message cannot move from {old} to {new}")
        self.old = old
        self.new = new


class AlreadyProcessed(InboundError):
    """Another worker finished this message first; roll back."""
