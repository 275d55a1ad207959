"""Random identifiers for XML ids, Content-IDs and MIME boundaries."""

from __future__ import annotations

import os

__all__ = ["uid", "uids"]


def uid() -> str:
    """32 hex characters of randomness (cheaper than formatting a UUID)."""
    return os.urandom(16).hex()


def uids(n: int) -> list[str]:
    """``n`` values like :func:`uid` from one read of the system's random source."""
    raw = os.urandom(16 * n).hex()
    return [raw[i : i + 32] for i in range(0, 32 * n, 32)]
