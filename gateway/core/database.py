"""The connection pool: connect, apply pending migrations, and fail with a clear error."""

from __future__ import annotations

import errno
import socket

import asyncpg

from gateway.core import queries
from gateway.core.config import Settings
from gateway.core.errors import CoreError
from gateway.core.migrate import apply_migrations

__all__ = ["DatabaseUnavailable", "create_databases", "create_pool", "database_unavailable"]


class DatabaseUnavailable(CoreError):
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


_UNREACHABLE_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH,
     errno.ETIMEDOUT, errno.EPIPE, errno.EHOSTDOWN, errno.ENETDOWN}
)  # fmt: skip
_DATABASE_DOWN = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection lost mid-query
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up (57P*)
    asyncpg.TooManyConnectionsError,
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,  # connect timeout, pool acquire timeout
    socket.gaierror,  # the database host name does not resolve
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot be reached right now: a
    temporary condition the caller should retry, not a fault of the request or the code."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, _DATABASE_DOWN):
            return True
        if isinstance(seen, OSError) and seen.errno in _UNREACHABLE_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def create_databases(conn: asyncpg.Connection, names: list[str]) -> None:
    """Create the databases that do not exist yet (one server holding several gateways)."""
    existing = await queries.database_names(conn)
    for name in names:
        if name not in existing:
            await queries.create_database(conn, name)
