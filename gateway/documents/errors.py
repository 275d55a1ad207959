"""The root of the ``documents`` package's errors (see ``gateway.core.errors`` for the whole tree).

DocumentError
└── SbdhError      the envelope or the business document cannot be read or built as given
"""

from __future__ import annotations

from gateway.core.errors import GatewayError

__all__ = ["DocumentError"]


class DocumentError(GatewayError):
    """A business document or its Peppol envelope is not what it must be."""
