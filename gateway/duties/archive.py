"""Archival: completed exchanges leave the hot tables for an archive after ``archive.after_days``,
and are deleted after ``archive.retention_days``.

Layout, one directory (or key prefix) per exchange::

    in/2026/11/24/in-1234/          out/2026/11/24/out-5678/
        document.xml                the Peppol envelope with the business document
        as4-message.mime            the AS4 message as received / as sent (signed, encrypted)
        receipt.xml                 the signed AS4 receipt we sent / received
        record.json                 metadata: parties, types, MLS and answers, the audit trail
        manifest.json               written last: SHA-256 and size of each file above

An entry is complete when its manifest exists, and verifiable by anyone with ``sha256sum``: each
file must match its hash in the manifest (:func:`verify_entry`). Reads from the archive check the
hash too, so a corrupted object is an error, never a wrong document.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from gateway.core.lifecycle import run_loop
from gateway.documents import queries as documents_queries
from gateway.duties import queries
from gateway.duties.archive_store import ArchiveStore
from gateway.duties.errors import ArchiveError
from gateway.outbound.states import FINAL

__all__ = ["MANIFEST", "Archiver", "read_archived", "verify_entry"]

log = structlog.get_logger("gateway.duties.archive")

_ENDED = tuple(str(state) for state in FINAL)  # a sent document is archived once it is final

MANIFEST = "manifest.json"
LAYOUT_VERSION = 1
_LOCK_KEY = 0x4152_4348_4956  # one archiver per database at a time
# Which messages are complete, in the text the other domains' lifecycles store: a received one
# whose processing is done, a sent one delivered or failed.


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _entry_key(direction: str, row_id: int, when: datetime) -> str:
    return f"{direction}/{when:%Y/%m/%d}/{direction}-{row_id}"


def _files(exchange: queries.ExchangeToArchive) -> dict[str, bytes]:
    record = {k: _jsonable(v) for k, v in exchange.columns.items()}
    record["direction"] = "received" if exchange.direction == "in" else "sent"
    if exchange.direction == "out":
        record["audit"] = exchange.audit
    files = {
        "document.xml": exchange.document,
        "record.json": json.dumps(record, indent=2, sort_keys=True).encode(),
    }
    if exchange.message is not None:
        files["as4-message.mime"] = exchange.message
    if exchange.receipt is not None:
        files["receipt.xml"] = exchange.receipt
    return files


def _manifest(key: str, files: dict[str, bytes], now: datetime) -> bytes:
    return json.dumps(
        {
            "layout": LAYOUT_VERSION,
            "entry": key,
            "archived_at": now.isoformat(),
            "files": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for name, data in sorted(files.items())
            },
        },
        indent=2,
    ).encode()


async def verify_entry(archive: ArchiveStore, key: str) -> list[str]:
    """Problems with an archived entry (empty when every file matches its manifest)."""
    try:
        manifest = json.loads(await archive.get(f"{key}/{MANIFEST}"))
    except (ArchiveError, ValueError) as exc:
        return [f"{key}: no readable manifest ({exc})"]
    problems = []
    for name, facts in manifest["files"].items():
        try:
            data = await archive.get(f"{key}/{name}")
        except ArchiveError as exc:
            problems.append(f"{key}/{name}: {exc}")
            continue
        if hashlib.sha256(data).hexdigest() != facts["sha256"] or len(data) != facts["size"]:
            problems.append(f"{key}/{name}: does not match its SHA-256 in the manifest")
    return problems


async def read_archived(archive: ArchiveStore, key: str, name: str = "document.xml") -> bytes:
    """One file of an archived exchange, checked against the manifest."""
    manifest = json.loads(await archive.get(f"{key}/{MANIFEST}"))
    data = await archive.get(f"{key}/{name}")
    expected = manifest["files"].get(name, {}).get("sha256")
    if hashlib.sha256(data).hexdigest() != expected:
        raise ArchiveError(f"{key}/{name} does not match its SHA-256 in the manifest")
    return data


class Archiver:
    """Moves completed exchanges to the archive and enforces retention."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        archive: ArchiveStore,
        *,
        after_days: float,
        retention_days: float,
        inbound_done: str,
        batch: int = 200,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # When a received message is finished is the inbound domain's word (it sits above this
        # package), so the caller names that state; a sent document has ended when it is final.
        self.inbound_done = inbound_done
        self.pool = pool
        self.archive = archive
        self.after = timedelta(days=after_days)
        self.retention = timedelta(days=retention_days)
        self.batch = batch
        self.clock = clock

    async def archive_due(self) -> int:
        """Archive every exchange older than ``after_days``; returns how many."""
        total = 0
        cutoff = self.clock() - self.after
        while True:
            due = await queries.inbound_to_archive(self.pool, cutoff, self.batch, processed=self.inbound_done)
            due += await queries.outbound_to_archive(
                self.pool, cutoff, self.batch, ended=tuple(str(state) for state in FINAL)
            )
            if not due:
                return total
            for exchange in due:
                await self._archive_one(exchange)
            total += len(due)

    async def _archive_one(self, exchange: queries.ExchangeToArchive) -> None:
        key = _entry_key(exchange.direction, exchange.id, exchange.at)
        files = _files(exchange)
        for name, data in files.items():
            await self.archive.put(f"{key}/{name}", data)
        await self.archive.put(f"{key}/{MANIFEST}", _manifest(key, files, self.clock()))  # last: complete
        async with self.pool.acquire() as conn, conn.transaction():
            await queries.mark_archived(conn, exchange.direction, exchange.id, key)
            await documents_queries.release_documents(conn, list(exchange.digests))

    async def purge_expired(self) -> int:
        """Delete exchanges past their retention, from the archive and the database."""
        total = 0
        cutoff = self.clock() - self.retention
        while True:
            expired = await queries.archived_before(self.pool, cutoff, self.batch)
            if not expired:
                return total
            for entry in expired:
                for name in await self.archive.list(entry.archive_key + "/"):
                    if name != f"{entry.archive_key}/{MANIFEST}":
                        await self.archive.delete(name)
                await self.archive.delete(f"{entry.archive_key}/{MANIFEST}")
                async with self.pool.acquire() as conn, conn.transaction():
                    await queries.forget_exchange(conn, entry.direction, entry.id)
            total += len(expired)

    async def run_once(self) -> tuple[int, int]:
        """One pass, in one process of the deployment at a time."""
        async with queries.advisory_lock(self.pool, _LOCK_KEY) as mine:
            if not mine:
                return 0, 0
            archived = await self.archive_due()
            purged = await self.purge_expired()
        if archived or purged:
            log.info("archive_pass", archived=archived, purged=purged)
        return archived, purged

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        async def step() -> bool:
            await self.run_once()
            return False

        await run_loop("duties.archive", step, stop, interval=interval)
