"""The documents domain's SQL, behind typed functions."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from gateway.documents.spool import Spool, SpoolWriter


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def put_document(conn: asyncpg.Connection, data: bytes) -> bytes:
    """Store bytes once, keyed by their SHA-256; returns the key."""
    digest = sha256(data)
    await conn.execute(
        "INSERT INTO documents (sha256, size_bytes, content) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
        digest,
        len(data),
        data,
    )
    return digest


async def release_documents(conn: asyncpg.Connection, digests: list[bytes]) -> int:
    """Empty stored documents no message outside the archive still uses."""
    result = await conn.execute(
        """UPDATE documents d SET content = NULL
           WHERE d.sha256 = ANY($1::bytea[]) AND d.content IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM inbound_messages m WHERE m.archived_at IS NULL
                             AND (m.document_sha256 = d.sha256 OR m.message_sha256 = d.sha256))
             AND NOT EXISTS (SELECT 1 FROM outbound_messages o WHERE o.archived_at IS NULL
                             AND (o.document_sha256 = d.sha256 OR o.sent_message_sha256 = d.sha256))""",
        digests,
    )
    return int(result.split()[-1])


@dataclass(frozen=True)
class StoredRef:
    """Where a message's document is: the documents table, or the archive once released."""

    sha256: bytes
    archive_key: str | None


async def document_content(conn: asyncpg.Connection | asyncpg.Pool, digest: bytes) -> bytes | None:
    """The stored bytes, or None once they were released to the archive."""
    content = await conn.fetchval("SELECT content FROM documents WHERE sha256 = $1", digest)
    return None if content is None else bytes(content)


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")


async def _copy_rows(spool: Spool) -> AsyncIterator[bytes]:
    """One row of ``(sha256, size_bytes, content)`` in COPY's binary format, the content read
    from the spool in chunks."""
    yield (
        _COPY_HEADER
        + (3).to_bytes(2, "big")
        + (32).to_bytes(4, "big")
        + spool.sha256
        + (8).to_bytes(4, "big")
        + spool.size.to_bytes(8, "big", signed=True)
        + spool.size.to_bytes(4, "big")
    )
    for chunk in spool.chunks():
        yield chunk
    yield (-1).to_bytes(2, "big", signed=True)


async def put_spooled_document(conn: asyncpg.Connection, spool: Spool) -> bytes:
    """Store a spooled document once, keyed by its SHA-256, streamed in with COPY so that it is
    never held in memory (call inside a transaction); returns the key."""
    if spool.size >= 1 << 30:
        raise ValueError("PostgreSQL cannot store a value of 1 GB or more")
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS spooled_documents"
        " (sha256 bytea, size_bytes bigint, content bytea) ON COMMIT DELETE ROWS"
    )
    await conn.copy_to_table(
        "spooled_documents", source=_copy_rows(spool), columns=["sha256", "size_bytes", "content"], format="binary"
    )
    await conn.execute(
        """INSERT INTO documents (sha256, size_bytes, content)
           SELECT sha256, size_bytes, content FROM spooled_documents ON CONFLICT (sha256) DO NOTHING"""
    )
    await conn.execute("TRUNCATE spooled_documents")
    return spool.sha256


class _CopyField:
    """The one bytea field of a one-row binary COPY, taken out of the stream as it arrives."""

    def __init__(self, out: SpoolWriter) -> None:
        self._out = out
        self._head = b""
        self._left = -1  # bytes of the field still to come; -1 while the header is read
        self.found = False

    def feed(self, chunk: bytes) -> None:
        if self._left < 0:
            self._head += chunk
            # signature (11) + flags (4) + extension length (4) + field count (2) + field length (4)
            if len(self._head) < 25:
                return
            count = int.from_bytes(self._head[19:21], "big", signed=True)
            if count == -1:  # the trailer at once: no row
                self._left = 0
                return
            length = int.from_bytes(self._head[21:25], "big", signed=True)
            self.found = length >= 0
            chunk, self._head, self._left = self._head[25:], b"", max(length, 0)
        if self._left:
            data = chunk[: self._left]
            self._out.write(data)
            self._left -= len(data)


async def spool_document(conn: asyncpg.Connection | asyncpg.Pool, digest: bytes) -> Spool | None:
    """Copy a stored document into a spool file with COPY TO STDOUT, in chunks, so that it is
    never held in memory; None when it is not stored (or was released to the archive). The
    file is the caller's to remove."""
    out = SpoolWriter()
    field = _CopyField(out)

    async def sink(chunk: bytes) -> None:
        field.feed(chunk)

    try:
        if isinstance(conn, asyncpg.Pool):
            async with conn.acquire() as own:
                await own.copy_from_query(
                    "SELECT content FROM documents WHERE sha256 = $1", digest, output=sink, format="binary"
                )
        else:
            await conn.copy_from_query(
                "SELECT content FROM documents WHERE sha256 = $1", digest, output=sink, format="binary"
            )
    except BaseException:
        out.discard()
        raise
    spool = out.close()
    if not field.found:
        spool.remove()
        return None
    if spool.sha256 != digest:
        spool.remove()
        raise ValueError("the stored document does not hash to its key")
    return spool
