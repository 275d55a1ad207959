"""Plain-SQL schema migrations, applied in order inside one transaction.

Files are named ``NNNN_description.sql`` in ``gateway/core/migrations``. Applied versions are recorded
in ``schema_migrations``; an advisory lock keeps two processes starting at once from racing.
If any pending file fails, the whole batch rolls back and the schema stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg
import structlog

from gateway.core.errors import CoreError

__all__ = ["Migration", "MigrationError", "apply_migrations", "load_migrations"]

log = structlog.get_logger("gateway.core.migrate")

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x5E9901  # advisory lock id for migrations


class MigrationError(CoreError):
    """A migration file is malformed or failed to apply; nothing was changed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read the migration files, checking names and that versions are unique."""
    if directory is None:
        files = [
            (entry.name, entry.read_text(encoding="utf-8"))
            for entry in resources.files("gateway.core").joinpath("migrations").iterdir()
            if entry.name.endswith(".sql")
        ]
    else:
        files = [(p.name, p.read_text(encoding="utf-8")) for p in directory.glob("*.sql")]
    migrations: dict[int, Migration] = {}
    for filename, sql in files:
        match = _NAME.match(filename)
        if not match:
            raise MigrationError(f"migration file {filename!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"two migration files have version {version:04d}")
        migrations[version] = Migration(version, match.group(2), sql)
    return [migrations[v] for v in sorted(migrations)]


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply pending migrations; return the versions applied (empty when up to date)."""
    if migrations is None:
        migrations = load_migrations()
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed "
                    f"({exc.sqlstate}: {exc}); no migration was applied"
                ) from exc
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
    if applied_now:
        log.info("migrations_applied", versions=applied_now)
    return applied_now
