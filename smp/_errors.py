"""The base of every discovery failure; ``retryable`` tells whether trying later may help."""

from __future__ import annotations

__all__ = ["DiscoveryError"]


class DiscoveryError(Exception):
    """Finding or publishing a participant's endpoint failed."""

    retryable = False
