"""Large documents on disk instead of in memory: a spool file hashed while it is written, and a
read of an SBD that keeps its structure but not its bulk (an embedded attachment's base64).

A message of a hundred megabytes passes through the gateway as spool files and chunks; only
what a decision needs (the envelope, the document's identifiers) is ever parsed into a tree.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

__all__ = ["CHUNK", "LARGE_DOCUMENT_BYTES", "Spool", "SpoolWriter", "skeleton_of", "wrap_document"]

CHUNK = 1 << 20
# Documents above this size are spooled to files and streamed through submission, storage and
# delivery; below it they are held in memory (the faster path for the usual few kilobytes).
LARGE_DOCUMENT_BYTES = 2 * 1024 * 1024
TEXT_CAP = 64 * 1024  # characters kept of any one element's text in a skeleton


@dataclass(frozen=True)
class Spool:
    """A finished spool file: its size and SHA-256 known, read back in chunks."""

    path: Path
    size: int
    sha256: bytes

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        with self.path.open("rb") as f:
            while chunk := f.read(size):
                yield chunk

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    @property
    def wrapped_path(self) -> Path:
        """Where :func:`wrap_document` writes this document's SBD."""
        return Path(str(self.path) + ".sbd")

    def remove_with_wrapped(self) -> None:
        """Remove the file and the SBD written next to it, if any."""
        self.remove()
        self.wrapped_path.unlink(missing_ok=True)


class SpoolWriter:
    """Write chunks to a temporary file, counting and hashing them; :meth:`close` gives the
    :class:`Spool`. The file is the caller's to remove."""

    def __init__(self, directory: str | None = None) -> None:
        fd, name = tempfile.mkstemp(prefix="peppol-", suffix=".spool", dir=directory)
        self._file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.size = 0
        self._digest = hashlib.sha256()

    def write(self, chunk: bytes | memoryview) -> None:
        self._file.write(chunk)
        self.size += len(chunk)
        self._digest.update(chunk)

    def close(self) -> Spool:
        self._file.close()
        return Spool(self.path, self.size, self._digest.digest())

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class _Skeleton:
    """lxml parser target: the tree as it is, with every text cut to ``TEXT_CAP`` characters."""

    def __init__(self) -> None:
        self._builder = etree.TreeBuilder()
        self._text = 0

    def start(self, tag: str, attrib: dict[str, str], nsmap: dict[str | None, str] | None = None) -> etree._Element:
        self._text = 0
        return self._builder.start(tag, attrib, {(k or None): v for k, v in (nsmap or {}).items()})

    def end(self, tag: str) -> etree._Element:
        self._text = 0
        return self._builder.end(tag)

    def data(self, data: str) -> None:
        if self._text < TEXT_CAP:
            self._builder.data(data[: TEXT_CAP - self._text])
        self._text += len(data)

    def doctype(self, *_: object) -> None:
        raise ValueError("a DOCTYPE is not allowed")

    def close(self) -> etree._Element:
        return self._builder.close()


def skeleton_of(chunks: Iterable[bytes]) -> etree._Element:
    """Parse XML fed in chunks into a tree whose long texts are cut short: enough to read an
    SBD's envelope and a document's identifiers without holding its attachments.

    Raises ``ValueError`` for XML that is not well-formed or has a DOCTYPE."""
    parser = etree.XMLParser(
        target=_Skeleton(), resolve_entities=False, no_network=True, huge_tree=True, load_dtd=False
    )
    try:
        for chunk in chunks:
            parser.feed(chunk)
        root: etree._Element = parser.close()
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    return root


_DECLARATION = re.compile(rb"^<\?xml\s[^>]*?\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _body_start(head: bytes) -> int:
    """Where a document's own bytes begin after its BOM and XML declaration, which cannot stand
    inside another document. Raises ``ValueError`` for an encoding other than UTF-8 (the bytes
    are copied, not re-encoded)."""
    start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    found = _DECLARATION.match(head, start)
    if found is None:
        if head.startswith((b"\xff\xfe", b"\xfe\xff"), start) or head.startswith(b"<?xml", start):
            raise ValueError("a large document must be UTF-8 with a well-formed XML declaration")
        return start
    encoding = _ENCODING.search(found.group(0))
    if encoding is not None and encoding.group(1).lower() not in (b"utf-8", b"utf8"):
        raise ValueError(f"a large document must be UTF-8, not {encoding.group(1).decode()}")
    return found.end()


def wrap_document(document: Spool, prefix: bytes, suffix: bytes) -> Spool:
    """Copy a spooled document between ``prefix`` and ``suffix`` (an envelope's two halves) into
    a new spool file next to it, ``<document's file>.sbd``, leaving out the document's BOM and
    XML declaration: its bytes are kept exactly as submitted, never parsed into a tree."""
    with document.path.open("rb") as source:
        head = source.read(4096)
        start = _body_start(head)
        path = document.wrapped_path
        digest = hashlib.sha256()
        size = 0
        with path.open("wb") as out:
            for chunk in (prefix, head[start:]):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            while chunk := source.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.write(suffix)
            digest.update(suffix)
            size += len(suffix)
    return Spool(path, size, digest.digest())
