"""The gateway's pool: a released connection carries nothing over to its next user (no open
transaction, no LISTEN, no advisory lock), though only connections that held session state
pay for the full reset."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.core import database
from gateway.core.database import GatewayConnection, holds_session_state, open_pool
from gateway.duties.queries import advisory_lock


@pytest.fixture
async def one_connection(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of one connection: every acquire gets the connection the previous one released."""
    pool = await open_pool(db_dsn, min_size=1, max_size=1)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.mark.filterwarnings("ignore:.*active notification listener")
async def test_listening_connection_is_reset_on_release(one_connection: asyncpg.Pool) -> None:
    async with one_connection.acquire() as conn:
        assert isinstance(conn._con, GatewayConnection)
        await conn.add_listener("outbound_ready", lambda *_: None)
        assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 1
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0


async def test_session_lock_is_released_with_the_connection(one_connection: asyncpg.Pool, db_dsn: str) -> None:
    async with one_connection.acquire() as conn:
        holds_session_state(conn)
        assert await conn.fetchval("SELECT pg_try_advisory_lock(4242)")
    other = await asyncpg.connect(db_dsn)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock(4242)")  # free again
    finally:
        await other.close()


async def test_advisory_lock_helper_cannot_leak_its_lock(one_connection: asyncpg.Pool, db_dsn: str) -> None:
    """Even when the block is cancelled before the lock is given back."""

    async def hold() -> None:
        async with advisory_lock(one_connection, 4343) as mine:
            assert mine
            await asyncio.sleep(10)

    task = asyncio.create_task(hold())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    other = await asyncpg.connect(db_dsn)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock(4343)")
    finally:
        await other.close()


async def test_transaction_left_open_is_rolled_back(one_connection: asyncpg.Pool) -> None:
    conn = await one_connection.acquire()
    tx = conn.transaction()
    await tx.start()
    await conn.execute("CREATE TEMP TABLE left_open (x int)")
    await one_connection.release(conn)
    async with one_connection.acquire() as again:
        assert not again.is_in_transaction()
        assert await again.fetchval("SELECT to_regclass('pg_temp.left_open')") is None


async def test_large_values_are_stored_with_lz4(one_connection: asyncpg.Pool) -> None:
    text = b"<Invoice>" + b"".join(b"<Line>%d</Line>" % i for i in range(2000)) + b"</Invoice>"
    key = hashlib.sha256(text).digest()
    insert = "INSERT INTO documents (sha256, size_bytes, content) VALUES ($1, $2, $3)"
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SHOW default_toast_compression") == "lz4"
        await conn.execute(insert, key, len(text), text)
        holds_session_state(conn)  # a full reset keeps what the connection started with
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SHOW default_toast_compression") == "lz4"
        compression = "SELECT pg_column_compression(content) FROM documents WHERE sha256 = $1"
        assert await conn.fetchval(compression, key) == "lz4"
        assert await conn.fetchval("SELECT content FROM documents WHERE sha256 = $1", key) == text


async def test_a_server_refusing_the_settings_still_gets_connections(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "SESSION_SETTINGS", {"default_toast_compression": "zstd"})  # not in PostgreSQL 15
    pool = await open_pool(db_dsn, min_size=1, max_size=2)
    try:
        assert await pool.fetchval("SHOW default_toast_compression") == "pglz"
    finally:
        await pool.close()
