"""Queuing a job wakes the workers in the statement that stores it: when the job commits, never
before, and not at all when the caller's transaction rolls back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from gateway.outbound.submission import NOTIFY_CHANNEL, derive_submission, submit_document
from tests.support.paths import EXAMPLES


class Listener:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.woken: asyncio.Queue[str] = asyncio.Queue()

    def heard(self, _conn: object, _pid: int, channel: str, _payload: str) -> None:
        self.woken.put_nowait(channel)


@contextlib.asynccontextmanager
async def _listening(pool: asyncpg.Pool) -> AsyncIterator[asyncio.Queue[str]]:
    async with pool.acquire() as conn:
        listener = Listener(conn)
        await conn.add_listener(NOTIFY_CHANNEL, listener.heard)
        try:
            yield listener.woken
        finally:
            await conn.remove_listener(NOTIFY_CHANNEL, listener.heard)


async def test_a_queued_job_wakes_the_workers(db_pool: asyncpg.Pool) -> None:
    async with _listening(db_pool) as woken:
        derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
        job = await submit_document(db_pool, derived, retry_window=60)
        assert await asyncio.wait_for(woken.get(), 5) == NOTIFY_CHANNEL
        assert await db_pool.fetchval("SELECT state FROM outbound_messages WHERE id = $1", job) == "queued"


async def test_the_wake_up_comes_with_the_callers_commit(db_pool: asyncpg.Pool) -> None:
    async with _listening(db_pool) as woken:
        derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
        async with db_pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await submit_document(db_pool, derived, retry_window=60, conn=conn)
            await asyncio.sleep(0.3)
            assert woken.empty()
            await tx.rollback()
            await asyncio.sleep(0.3)
            assert woken.empty()  # rolled back: nothing to wake anyone for
            async with conn.transaction():
                await submit_document(db_pool, derived, retry_window=60, conn=conn)
        assert await asyncio.wait_for(woken.get(), 5) == NOTIFY_CHANNEL
        assert await db_pool.fetchval("SELECT count(*) FROM outbound_messages") == 1
