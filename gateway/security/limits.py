"""API rate limits that hold across replicas: a token bucket per API key kept in PostgreSQL.

Each authenticated request takes one token in one statement (an upsert that refills the bucket
for the time since its last use, then takes a token if there is one); the row lock serialises
concurrent requests of one key, whichever process serves them, so N replicas still give a key
its limit once, not N times.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from gateway.security import queries

__all__ = ["Allowance", "RateLimit"]


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    remaining: int
    reset_seconds: float  # until the bucket is full again


@dataclass(frozen=True)
class RateLimit:
    """``limit`` requests per ``window`` seconds per key."""

    limit: int
    window: float = 60.0

    @property
    def rate(self) -> float:
        return self.limit / self.window

    async def take(self, pool: asyncpg.Pool | asyncpg.Connection, key: str) -> Allowance:
        allowed, tokens = await queries.take_rate_token(pool, key, capacity=float(self.limit), rate=self.rate)
        return self.allowance(allowed, tokens)

    def allowance(self, allowed: bool, tokens: float) -> Allowance:
        """What a take answered (taken, tokens left), as the caller sees it."""
        return Allowance(allowed, int(tokens), (self.limit - tokens) / self.rate)
