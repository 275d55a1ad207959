"""Shared fixtures: one real PostgreSQL per test run, a migrated template, a database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from gateway.core.logs import configure_logging
from gateway.core.migrate import apply_migrations
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki, create_dev_pki
from gateway.dev.postgres import EmbeddedPostgres

DATA = Path(__file__).parent / "data"

configure_logging("console", "warning")


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Admin DSN of a real server: DATABASE_URL if given, else a private embedded cluster."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), durable=False)
    try:
        yield server.start()
    finally:
        server.stop()


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
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=5)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A development PKI made for this test run (never the one in certs-dev/)."""
    directory = tmp_path_factory.mktemp("pki")
    return create_dev_pki(directory)


SML_ZONE = "sml.gateway.test"


@pytest.fixture(scope="session")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    """A real authoritative DNS server (Knot) for the local SML zone, for the whole run."""
    server = KnotDns(tmp_path_factory.mktemp("knot"), SML_ZONE)
    server.start()
    try:
        yield server
    finally:
        server.stop()
