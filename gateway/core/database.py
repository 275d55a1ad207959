"""The connection pool: connect, apply pending migrations, and fail with a clear error.

A connection goes back to the pool without the reset round trip asyncpg makes by default
(``UNLISTEN *``, ``RESET ALL``, ``CLOSE ALL``, ``pg_advisory_unlock_all()``: four statements on
every release, as many as the statements the hot paths run): the gateway leaves no session state
on a connection except a ``LISTEN`` (:meth:`GatewayConnection.add_listener`) and a session-level
advisory lock (:func:`holds_session_state`), and a connection that had either gets the full
reset. A transaction left open is rolled back on release as before.

Connections ask for LZ4 as the compression of newly stored large values in the columns that do
not name one (``default_toast_compression``, a startup setting so that a reset keeps it): the
documents and receipts have LZ4 from migration 0003, but the content view kept with every
document (a JSON of some 4 KB), validation reports and event payloads were compressed with
pglz (a content view's insert: 130 -> 80-95 us of server CPU). Values stored before stay as they
are (PostgreSQL reads either). A server that refuses the setting (built without LZ4, or a
pooler that passes no such parameter) gets connections without it.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from gateway.core import queries
from gateway.core.config import Settings
from gateway.core.errors import CoreError
from gateway.core.migrate import apply_migrations

__all__ = [
    "DatabaseUnavailable",
    "GatewayConnection",
    "create_databases",
    "create_pool",
    "database_unavailable",
    "holds_session_state",
    "open_pool",
]


log = structlog.get_logger("gateway.core.database")

SESSION_SETTINGS = {"default_toast_compression": "lz4"}


class DatabaseUnavailable(CoreError):
    """PostgreSQL could not be reached at start-up."""


class GatewayConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection that knows whether it holds session state, so that its release
    resets only what needs resetting."""

    _session_state = False

    def hold_session_state(self) -> None:
        """This connection now holds session state: reset it in full when it is released."""
        self._session_state = True

    async def add_listener(self, channel: str, callback: Callable[..., Any]) -> None:
        self._session_state = True
        await super().add_listener(channel, callback)


def holds_session_state(conn: asyncpg.Connection) -> None:
    """Mark ``conn`` (pooled, or a pool's proxy of it) as holding session state, e.g. before
    taking a session-level advisory lock: its release then runs the full reset. A connection
    of another pool is reset in full anyway."""
    mark = getattr(conn, "hold_session_state", None)
    if mark is not None:
        mark()


async def _reset(conn: asyncpg.Connection) -> None:
    """The pool's reset on release (after asyncpg rolled back a transaction left open): the
    full reset for a connection that held session state, nothing for the others."""
    if getattr(conn, "_session_state", True):
        query = conn.get_reset_query()
        if query:
            await conn.execute(query)
        if isinstance(conn, GatewayConnection):
            conn._session_state = False


class _Connector:
    """Opens the pool's connections with :data:`SESSION_SETTINGS`, or, once the server refused
    them, without."""

    def __init__(self) -> None:
        self.settings = dict(SESSION_SETTINGS)

    async def __call__(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        if self.settings:
            try:
                return await asyncpg.connect(*args, server_settings=self.settings, **kwargs)
            except asyncpg.PostgresError as exc:
                log.info("database_session_settings_refused", settings=self.settings, error=str(exc))
                self.settings = {}
        return await asyncpg.connect(*args, **kwargs)


async def open_pool(dsn: str, *, min_size: int, max_size: int, timeout: float = 10) -> asyncpg.Pool:
    """A pool of :class:`GatewayConnection` with the session settings above, released
    without the reset round trip."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, timeout=timeout, connection_class=GatewayConnection, reset=_reset,
        connect=_Connector(),
    )  # fmt: skip
    assert pool is not None
    return pool


async def create_pool(settings: Settings, dsn: str, *, migrate: bool = True) -> asyncpg.Pool:
    """Connect, apply pending migrations, and return a pool."""
    try:
        if migrate:
            conn = await asyncpg.connect(dsn, timeout=10)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()
        return await open_pool(dsn, min_size=settings.database_pool_min, max_size=settings.database_pool_max)
    except (OSError, asyncpg.InvalidPasswordError, asyncpg.InvalidCatalogNameError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc


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
