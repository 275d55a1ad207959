"""What the shared API rate limit costs per request: the token-bucket upsert in PostgreSQL,
alone (p50/p99 of one call) and under 50 concurrent callers (one hot key, and a key each),
beside a bare ``SELECT 1`` round trip on the same pool."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from gateway.core.migrate import apply_migrations
from gateway.dev.postgres import EmbeddedPostgres
from gateway.security.limits import RateLimit


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _timed(call: object, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _run(data: Path, n: int = 2000) -> None:
    postgres = EmbeddedPostgres(data)
    dsn = postgres.start()
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=50)
        assert pool is not None
        rule = RateLimit(limit=10_000_000, window=60.0)
        try:
            bare = await _timed(lambda: pool.fetchval("SELECT 1"), n)
            take = await _timed(lambda: rule.take(pool, "one-key"), n)
            print(f"  SELECT 1 round trip: p50 {_pct(bare, 0.5):.3f} ms  p99 {_pct(bare, 0.99):.3f} ms")
            print(
                f"  rate-limit take:     p50 {_pct(take, 0.5):.3f} ms  p99 {_pct(take, 0.99):.3f} ms"
                f"  (extra per request: {statistics.median(take) - statistics.median(bare):+.3f} ms)"
            )
            for label, keys in (("one hot key", 1), ("a key each", 50)):
                start = time.perf_counter()

                async def client(i: int, key_count: int = keys) -> None:
                    for _ in range(n // 50):
                        await rule.take(pool, f"key-{i % key_count}")

                await asyncio.gather(*(client(i) for i in range(50)))
                rate = (n // 50) * 50 / (time.perf_counter() - start)
                print(f"  50 concurrent callers, {label}: {rate:,.0f} takes/s")
        finally:
            await pool.close()
    finally:
        postgres.stop()


def main() -> None:
    print("Shared API rate limit (token bucket in PostgreSQL), loopback")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp)))


if __name__ == "__main__":
    main()
