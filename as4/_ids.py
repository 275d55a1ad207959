"""Random identifiers for XML ids, Content-IDs and MIME boundaries."""

from __future__ import annotations

import os

__all__ = ["uid"]


def uid() -> str:
    """32 hex characters of randomness (cheaper than formatting a UUID)."""
    return os.urandom(16).hex()
