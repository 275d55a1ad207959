"""The database's own SQL: is it there, which schema does it hold, which databases exist."""

from __future__ import annotations

import asyncpg

__all__ = ["create_database", "database_answers", "database_names", "schema_version"]


async def database_answers(pool: asyncpg.Pool | asyncpg.Connection) -> bool:
    return bool(await pool.fetchval("SELECT 1") == 1)


async def schema_version(pool: asyncpg.Pool | asyncpg.Connection) -> int | None:
    """The newest migration applied, or None before the first."""
    version = await pool.fetchval("SELECT max(version) FROM schema_migrations")
    return None if version is None else int(version)


async def database_names(conn: asyncpg.Connection) -> set[str]:
    return {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}


async def create_database(conn: asyncpg.Connection, name: str) -> None:
    """``name`` must be a plain identifier (checked here: it cannot be a bound parameter)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {name!r}")
    await conn.execute(f'CREATE DATABASE "{name}"')
