"""Where the database comes from: a given ``DATABASE_URL`` or the embedded cluster."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from gateway.config import Settings
from gateway.devdb import EmbeddedPostgres, EmbeddedPostgresError
from gateway.migrate import apply_migrations

__all__ = ["DatabaseUnavailable", "create_pool", "database_url"]


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached at start-up."""


@contextlib.asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """Yield the DSN to use, running the embedded cluster for the duration when needed."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        dsn = embedded.start()
    except EmbeddedPostgresError:
        # Another gateway process (e.g. `make run`) owns the cluster: use it while it runs.
        shared = embedded.running_dsn()
        if shared is None:
            raise
        yield shared
        return
    try:
        yield dsn
    finally:
        embedded.stop()


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
