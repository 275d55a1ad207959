"""The servers the integration and system tiers share: one real PostgreSQL (a migrated template, a
database per test) and one real DNS server (Knot) for the SML zone.

Each tier's conftest registers these fixtures; the servers behind them are started once per run
however many tiers ask for them, and stopped when the last tier lets go."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from gateway.core.database import open_pool
from gateway.core.migrate import apply_migrations
from gateway.dev.dns import KnotDns
from gateway.dev.postgres import EmbeddedPostgres

SML_ZONE = "sml.gateway.test"

# name -> [server value, users, stop]
_shared: dict[str, list[Any]] = {}


@contextmanager
def _share(name: str, start: Callable[[], tuple[Any, Callable[[], None]]]) -> Iterator[Any]:
    """One server per run for every fixture that asks for ``name``; stopped with its last user."""
    if name not in _shared:
        value, stop = start()
        _shared[name] = [value, 0, stop]
    entry = _shared[name]
    entry[1] += 1
    try:
        yield entry[0]
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            del _shared[name]
            entry[2]()


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Admin DSN of a real server: DATABASE_URL if given, else a private embedded cluster."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return

    def start() -> tuple[str, Callable[[], None]]:
        server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), durable=False)
        try:
            return server.start(), server.stop
        except BaseException:
            server.stop()
            raise

    with _share("postgres", start) as dsn:
        yield dsn


@pytest.fixture(scope="session")
async def template_db(pg_dsn: str) -> AsyncIterator[str]:
    name = f"gw_template_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        tconn = await asyncpg.connect(with_database(pg_dsn, name))
        try:
            await apply_migrations(tconn)
        finally:
            await tconn.close()
        yield name
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def empty_db(pg_dsn: str) -> AsyncIterator[str]:
    """DSN of a fresh database with no schema at all."""
    name = f"gw_empty_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield with_database(pg_dsn, name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db_dsn(pg_dsn: str, template_db: str) -> AsyncIterator[str]:
    """DSN of a database of its own for this test, migrated (copied from the template)."""
    name = f"gw_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" STRATEGY FILE_COPY')
        yield with_database(pg_dsn, name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db_pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(db_dsn, min_size=1, max_size=5)  # as the gateway opens it
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    """A real authoritative DNS server (Knot) for the local SML zone, for the whole run."""

    def start() -> tuple[KnotDns, Callable[[], None]]:
        server = KnotDns(tmp_path_factory.mktemp("knot"), SML_ZONE)
        server.start()
        return server, server.stop

    with _share("knot", start) as server:
        yield server
