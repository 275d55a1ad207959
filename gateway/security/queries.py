"""The security domain's SQL, behind typed functions."""

from __future__ import annotations

import asyncpg

__all__ = ["take_rate_token"]


async def take_rate_token(
    pool: asyncpg.Pool | asyncpg.Connection, key: str, *, capacity: float, rate: float
) -> tuple[bool, float]:
    """Refill ``key``'s bucket (``rate`` tokens a second, at most ``capacity``) and take one token
    if there is one; returns (taken, tokens left)."""
    row = await pool.fetchrow(
        """INSERT INTO rate_buckets AS b (key, tokens, allowed, updated_at)
           VALUES ($1, $2 - 1, true, clock_timestamp())
           ON CONFLICT (key) DO UPDATE SET
               allowed = least($2, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $3) >= 1,
               tokens = least($2, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $3)
                        - CASE WHEN least($2, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $3) >= 1
                               THEN 1 ELSE 0 END,
               updated_at = clock_timestamp()
           RETURNING allowed, tokens""",
        key,
        capacity,
        rate,
    )
    assert row is not None
    return bool(row["allowed"]), max(0.0, float(row["tokens"]))
