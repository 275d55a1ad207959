"""The root of the ``dev`` package's errors (see ``gateway.core.errors`` for the whole tree)."""

from __future__ import annotations

from gateway.core.errors import GatewayError

__all__ = ["DevError"]


class DevError(GatewayError):
    """A part of the local network (embedded PostgreSQL, Knot DNS, the dev PKI) failed."""
