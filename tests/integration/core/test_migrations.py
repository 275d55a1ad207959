"""Schema migrations: applied in order, once, and all-or-nothing."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from gateway.core.migrate import MigrationError, apply_migrations, load_migrations


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_fresh_database_gets_every_migration(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        applied = await apply_migrations(conn)
        assert applied == [m.version for m in load_migrations()]
        assert {"documents", "companies", "inbound_messages", "schema_migrations"} <= await _tables(conn)
    finally:
        await conn.close()


async def test_applying_twice_is_a_no_op(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await apply_migrations(conn)
        assert await apply_migrations(conn) == []
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(load_migrations())
    finally:
        await conn.close()


async def test_failing_migration_leaves_schema_unchanged(empty_db: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE bad (id int); SELECT * FROM missing;")
    conn = await asyncpg.connect(empty_db)
    try:
        with pytest.raises(MigrationError, match="0002_bad failed"):
            await apply_migrations(conn, load_migrations(tmp_path))
        assert await _tables(conn) == set()
    finally:
        await conn.close()
