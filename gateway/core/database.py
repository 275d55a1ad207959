"""The connection pool: connect, apply pending migrations, and fail with a clear error."""

from __future__ import annotations

import asyncpg

from gateway.core.config import Settings
from gateway.core.migrate import apply_migrations

__all__ = ["DatabaseUnavailable", "create_databases", "create_pool"]


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached at start-up."""


async def create_pool(settings: Settings, dsn: str, *, migrate: bool = True) -> asyncpg.Pool:
    """Connect, apply pending migrations, and return a pool."""
    try:
        if migrate:
            conn = await asyncpg.connect(dsn, timeout=10)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()
        pool = await asyncpg.create_pool(
            dsn,
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
            timeout=10,
        )
    except (OSError, asyncpg.InvalidPasswordError, asyncpg.InvalidCatalogNameError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool


async def create_databases(conn: asyncpg.Connection, names: list[str]) -> None:
    """Create the databases that do not exist yet (one server holding several gateways)."""
    existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
    for name in names:
        if name not in existing:
            await conn.execute(f'CREATE DATABASE "{name}"')
