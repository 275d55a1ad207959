"""The documents domain's SQL, behind typed functions."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import asyncpg

from gateway.documents.content import ContentRow
from gateway.documents.spool import CHUNK, Spool, SpoolWriter


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


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


# -- content views (document_contents): one per received or sent message


@dataclass(frozen=True)
class ContentFilter:
    """The listing filters on a document's content view; None means not filtered."""

    number: str | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    issued_from: date | None = None
    issued_to: date | None = None
    partner: str | None = None  # part of the seller's or buyer's name, or the other participant's id

    def params(self) -> tuple[object, ...]:
        """The filter as the listing statements bind it, in their parameter order."""
        return (
            self.number, self.amount_min, self.amount_max, self.issued_from, self.issued_to, self.partner,
            self.partner_pattern,
        )  # fmt: skip

    @property
    def partner_pattern(self) -> str | None:
        """``partner`` as an ILIKE pattern matching it anywhere, its wildcards taken literally."""
        if self.partner is None:
            return None
        escaped = self.partner.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"


@dataclass(frozen=True)
class StoredContent:
    view: str  # JSON
    version: int


_CONTENT_OF = {
    "in": "SELECT content::text AS view, view_version AS version FROM document_contents WHERE inbound_id = $1",
    "out": "SELECT content::text AS view, view_version AS version FROM document_contents WHERE outbound_id = $1",
}
_PUT_CONTENT = {
    direction: f"""INSERT INTO document_contents ({column}, view_version, number, issue_date, due_date, seller_name,
                                                  buyer_name, payable_amount, currency, content)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
         ON CONFLICT ({column}) DO UPDATE SET view_version = excluded.view_version, number = excluded.number,
             issue_date = excluded.issue_date, due_date = excluded.due_date, seller_name = excluded.seller_name,
             buyer_name = excluded.buyer_name, payable_amount = excluded.payable_amount,
             currency = excluded.currency, content = excluded.content, extracted_at = now()"""  # noqa: S608
    for direction, column in (("in", "inbound_id"), ("out", "outbound_id"))
}


async def stored_content(
    conn: asyncpg.Connection | asyncpg.Pool, direction: str, message_id: int
) -> StoredContent | None:
    """The content view kept for a received (``in``) or sent (``out``) message."""
    row = await conn.fetchrow(_CONTENT_OF[direction], message_id)
    return None if row is None else StoredContent(row["view"], row["version"])


async def put_content(
    conn: asyncpg.Connection | asyncpg.Pool, direction: str, message_id: int, row: ContentRow
) -> None:
    """Keep (or replace) a message's content view."""
    await conn.execute(
        _PUT_CONTENT[direction], message_id, row.version, row.number, row.issue_date, row.due_date, row.seller_name,
        row.buyer_name, row.payable_amount, row.currency, row.view,
    )  # fmt: skip


class _CopyRows:
    """The single bytea column of a binary COPY, the rows' bytes written out in order as they
    arrive (a row is held only while it is parsed)."""

    def __init__(self, out: SpoolWriter) -> None:
        self._out = out
        self._buf = b""
        self._header = True
        self._left = 0  # bytes of the current field still to come
        self.rows = 0

    def feed(self, chunk: bytes) -> None:
        if self._left:
            data, chunk = chunk[: self._left], chunk[self._left :]
            self._out.write(data)
            self._left -= len(data)
            if self._left or not chunk:
                return
        buf = self._buf + chunk
        while True:
            if self._header:
                if len(buf) < 19:  # signature (11), flags (4), header extension length (4)
                    break
                buf, self._header = buf[19 + int.from_bytes(buf[15:19], "big") :], False
                continue
            if len(buf) < 2:
                break
            if int.from_bytes(buf[:2], "big", signed=True) == -1:  # the trailer
                buf = b""
                break
            if len(buf) < 6:
                break
            length = max(int.from_bytes(buf[2:6], "big", signed=True), 0)
            self.rows += 1
            data = buf[6 : 6 + length]
            self._out.write(data)
            self._left = length - len(data)
            buf = buf[6 + length :]
            if self._left:
                break
        self._buf = buf


# One row per megabyte: PostgreSQL sends a COPY row as one message, so a whole document in
# one row would arrive whole. The value is detoasted once (MATERIALIZED) and then sliced.
# (asyncpg runs it as COPY (...) TO STDOUT.)
_COPY_OUT = """
    WITH d AS MATERIALIZED (SELECT content || ''::bytea AS c FROM documents
                            WHERE sha256 = {digest} AND content IS NOT NULL)
    SELECT substring(d.c FROM g * {chunk} + 1 FOR {chunk})
    FROM d, generate_series(0, greatest(length(d.c) - 1, 0) / {chunk}) AS g ORDER BY g"""


async def spool_document(conn: asyncpg.Connection | asyncpg.Pool, digest: bytes) -> Spool | None:
    """Copy a stored document into a spool file with COPY TO STDOUT, in chunks, so that it is
    never held in memory; None when it is not stored (or was released to the archive). The
    file is the caller's to remove."""
    out = SpoolWriter()
    rows = _CopyRows(out)

    async def sink(chunk: bytes) -> None:
        rows.feed(chunk)

    query = _COPY_OUT.format(digest=f"'\\x{digest.hex()}'::bytea", chunk=CHUNK)
    try:
        if isinstance(conn, asyncpg.Pool):
            async with conn.acquire() as own:
                await own.copy_from_query(query, output=sink, format="binary")
        else:
            await conn.copy_from_query(query, output=sink, format="binary")
    except BaseException:
        out.discard()
        raise
    spool = out.close()
    if not rows.rows:
        spool.remove()
        return None
    if spool.sha256 != digest:
        spool.remove()
        raise ValueError("the stored document does not hash to its key")
    return spool
