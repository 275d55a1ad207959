"""The webhooks domain's SQL, behind typed functions."""

from __future__ import annotations

import asyncpg


async def add_operator_event(pool: asyncpg.Pool, kind: str, payload: str) -> None:
    """An event for every operator of this gateway (it concerns no company)."""
    await pool.execute("INSERT INTO events (company_id, kind, payload) VALUES (NULL, $1, $2::jsonb)", kind, payload)
