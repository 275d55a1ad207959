"""XML written directly in its exclusive canonical form.

The parts of an outgoing message that get signed (eb:Messaging, S12:Body, ds:SignedInfo) are
written as text that already is their exclusive XML canonicalization (W3C exc-c14n 1.0,
without comments): each declares every prefix it uses, attributes are in canonical order, no
element is self-closed and values are escaped the canonical way. Such an element canonicalizes
to exactly these bytes wherever it sits in a document, so its digest is the SHA-256 of the text
we wrote, with no tree to build, serialize and canonicalize again.
"""

from __future__ import annotations

import re

__all__ = ["attr", "text"]

# XML 1.0 Char: anything else cannot travel in a document at all
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _check(value: str) -> None:
    if _NOT_XML.search(value):
        raise ValueError("All strings must be XML compatible: no NULL bytes or control characters")


def text(value: str) -> str:
    """Character data as canonical XML writes it (``&``, ``<``, ``>`` and CR escaped)."""
    _check(value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def attr(value: str) -> str:
    """An attribute value as canonical XML writes it between double quotes."""
    _check(value)
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )
