"""What can go wrong in the webhooks domain, under one root.

::

    WebhookError
    └── DeliveryMoveError   a delivery asked to move to a state its lifecycle forbids
"""

from __future__ import annotations

from gateway.core.errors import GatewayError

__all__ = ["DeliveryMoveError", "WebhookError"]


class WebhookError(GatewayError):
    """The root of every webhooks error, so a caller can catch the domain as a whole."""


class DeliveryMoveError(WebhookError):
    """A delivery state change the lifecycle does not allow (a programming error)."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(f"a webhook delivery cannot move from {old} to {new}")
        self.old = old
        self.new = new
