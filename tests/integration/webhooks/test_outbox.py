"""The events outbox: every event is fanned out to its webhooks exactly once, whatever order
the transactions that wrote the events commit in and however many fan-out workers run."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from gateway.core.migrate import apply_migrations, load_migrations
from gateway.webhooks import queries
from gateway.webhooks.delivery import WebhookWorker


@dataclass
class Hooked:
    company_id: uuid.UUID
    webhooks: list[uuid.UUID]


async def _hooked_company(pool: asyncpg.Pool) -> Hooked:
    """A company linked to an operator, with a webhook of its own and the operator's vendor webhook."""
    operator_id, company_id = uuid.uuid4(), uuid.uuid4()
    await pool.execute("INSERT INTO operators (id, name) VALUES ($1, 'Operator')", operator_id)
    await pool.execute(
        "INSERT INTO companies (id, name, country, business_id, operator_id) VALUES ($1, 'Hooked', 'NO', $2, $3)",
        company_id, str(random.randrange(10**8, 10**9)), operator_id,
    )  # fmt: skip
    own, vendor = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO webhooks (id, company_id, destination_type, destination, secret) "
        "VALUES ($1, $2, 'WEBHOOK', 'http://127.0.0.1:9/own', 's')",
        own, company_id,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO webhooks (id, operator_id, destination_type, destination, secret) "
        "VALUES ($1, $2, 'VENDOR_WEBHOOK', 'http://127.0.0.1:9/vendor', 's')",
        vendor, operator_id,
    )  # fmt: skip
    return Hooked(company_id, [own, vendor])


async def _add_event(conn: asyncpg.Connection | asyncpg.Pool, company_id: uuid.UUID) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO events (company_id, kind, payload) VALUES ($1, 'document.received', '{}') RETURNING id",
            company_id,
        )
    )


async def _deliveries_per_pair(pool: asyncpg.Pool) -> dict[tuple[uuid.UUID, int], int]:
    rows = await pool.fetch("SELECT webhook_id, event_id, count(*) AS n FROM webhook_deliveries GROUP BY 1, 2")
    return {(r["webhook_id"], r["event_id"]): r["n"] for r in rows}


@pytest.fixture
async def pools(db_dsn: str) -> AsyncIterator[list[asyncpg.Pool]]:
    """Three pools on one database: writers, and one each for two fan-out workers (as two processes)."""
    made: list[asyncpg.Pool] = []
    try:
        for size in (12, 2, 2):
            pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=size)
            assert pool is not None
            made.append(pool)
        yield made
    finally:
        for pool in made:
            await pool.close()


async def test_an_event_committed_after_a_later_one_is_not_passed_over(db_pool: asyncpg.Pool) -> None:
    hooked = await _hooked_company(db_pool)
    worker = WebhookWorker(db_pool)
    async with db_pool.acquire() as slow:
        transaction = slow.transaction()
        await transaction.start()
        early = await _add_event(slow, hooked.company_id)  # takes its id first, commits last
        late = await _add_event(db_pool, hooked.company_id)
        assert early < late
        assert await worker.fan_out() == 2  # the late event, to both webhooks
        await transaction.commit()
    assert await worker.fan_out() == 2  # the early one, once it is committed
    assert await worker.fan_out() == 0
    pairs = await _deliveries_per_pair(db_pool)
    assert pairs == {(hook, event): 1 for hook in hooked.webhooks for event in (early, late)}


async def test_a_rolled_back_event_leaves_nothing_behind(db_pool: asyncpg.Pool) -> None:
    hooked = await _hooked_company(db_pool)
    async with db_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await _add_event(conn, hooked.company_id)
        await transaction.rollback()
    assert await queries.outbox_backlog(db_pool) == 0
    assert await WebhookWorker(db_pool).fan_out() == 0


async def test_many_writers_and_two_fan_out_workers_deliver_each_event_exactly_once(
    pools: list[asyncpg.Pool],
) -> None:
    writers_pool, *worker_pools = pools
    hooked = await _hooked_company(writers_pool)
    rng = random.Random(7)
    written: list[int] = []
    writing = True

    async def writer(events: int) -> None:
        for _ in range(events):
            async with writers_pool.acquire() as conn, conn.transaction():
                ids = [await _add_event(conn, hooked.company_id)]
                if rng.random() < 0.2:  # now and then two events in one statement
                    rows = await conn.fetch(
                        "INSERT INTO events (company_id, kind, payload) "
                        "SELECT $1, 'document.received', '{}' FROM generate_series(1, 2) RETURNING id",
                        hooked.company_id,
                    )
                    ids += [r["id"] for r in rows]
                await asyncio.sleep(rng.uniform(0, 0.01))  # hold the ids while others commit
            written.extend(ids)

    async def fan_out(worker: WebhookWorker) -> int:
        created = 0
        while writing:
            created += await worker.fan_out(batch=7)
            await asyncio.sleep(0.001)
        return created + await worker.fan_out(batch=7)  # what committed after the last pass

    workers = [asyncio.create_task(fan_out(WebhookWorker(pool))) for pool in worker_pools]
    await asyncio.gather(*(writer(30) for _ in range(10)))
    writing = False
    created = await asyncio.gather(*workers)

    assert len(written) > 300
    expected = {(hook, event): 1 for hook in hooked.webhooks for event in written}
    assert await _deliveries_per_pair(writers_pool) == expected
    assert sum(created) == len(expected)  # neither worker fanned out what the other did
    assert await queries.outbox_backlog(writers_pool) == 0


async def test_migration_counts_events_up_to_the_cursor_as_fanned_out(empty_db: str) -> None:
    migrations = load_migrations()
    assert [m.name for m in migrations if m.version == 13] == ["webhook_outbox"]
    conn = await asyncpg.connect(empty_db)
    try:
        await apply_migrations(conn, [m for m in migrations if m.version < 13])
        company_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO companies (id, name, country, business_id) VALUES ($1, 'Old', 'NO', '991825827')", company_id
        )
        events = [await _add_event(conn, company_id) for _ in range(5)]
        await conn.execute("UPDATE webhook_cursor SET last_event_id = $1", events[2])
        await apply_migrations(conn, migrations)
        newer = await _add_event(conn, company_id)
        pending = [r["event_id"] for r in await conn.fetch("SELECT event_id FROM webhook_outbox ORDER BY 1")]
        assert pending == [events[3], events[4], newer]
    finally:
        await conn.close()
