"""What the shared circuit breaker costs a delivery to a healthy endpoint: admission reads the
endpoint's row (one round trip) and a success on a clean circuit writes nothing. Measured on
loopback to PostgreSQL, one delivery at a time and 16 at once, beside the bare round trip
(SELECT 1) for scale."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from gateway.core.migrate import apply_migrations
from gateway.dev.postgres import EmbeddedPostgres
from gateway.outbound.circuits import EndpointGuard

ROUNDS = 5_000
URL = "https://ap.example/as4"


async def _measure(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        # A circuit that failed once and recovered: the row exists, as for any partner seen failing.
        await conn.execute(
            "INSERT INTO endpoint_circuits (url, state, failures, cooldown) VALUES ($1, 'closed', 0, 0)", URL
        )
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=8)
    assert pool is not None
    try:
        guard = EndpointGuard(pool, max_concurrent=64)

        async def delivery() -> None:
            admission = await guard.admit(URL)
            await guard.finished(URL, admission, transport_failure=False)

        async def bare() -> None:
            await pool.fetchval("SELECT 1")

        for name, step in (("round trip (SELECT 1)", bare), ("circuit: admit + success", delivery)):
            for _ in range(200):
                await step()
            started = time.perf_counter()
            for _ in range(ROUNDS):
                await step()
            serial = (time.perf_counter() - started) / ROUNDS * 1e6
            started = time.perf_counter()
            await asyncio.gather(*(_many(step, ROUNDS // 16) for _ in range(16)))
            concurrent = (time.perf_counter() - started) / ROUNDS * 1e6
            print(f"  {name:26} {serial:6.0f} µs per delivery alone, {concurrent:5.0f} µs each with 16 at once")
    finally:
        await pool.close()


async def _many(step: Callable[[], Awaitable[None]], n: int) -> None:
    for _ in range(n):
        await step()


def main() -> None:
    print("Shared circuit breaker, cost per delivery to a healthy endpoint:")
    with tempfile.TemporaryDirectory() as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg", durable=False)
        dsn = postgres.start()
        try:
            asyncio.run(_measure(dsn))
        finally:
            postgres.stop()


if __name__ == "__main__":
    main()
