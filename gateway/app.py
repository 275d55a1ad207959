"""The aiohttp application: routes, middleware and the shared resources they use."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from aiohttp import web

from gateway.api.accounts import RUNTIME, add_account_routes
from gateway.api.auth import auth_middleware
from gateway.api.documents import add_document_routes
from gateway.api.envelope import ok
from gateway.api.middleware import request_context
from gateway.api.notifications import add_notification_routes
from gateway.api.openapi import serve_openapi
from gateway.api.ratelimit import RateLimiter
from gateway.config import Settings
from gateway.inbound import InboundEndpoint
from gateway.runtime import Runtime
from gateway.smp_source import DatabaseSmpSource
from gateway.version import __version__
from smp import mount_smp, smp_application

__all__ = ["POOL", "SETTINGS", "create_app"]

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)

_DB_CHECK_TIMEOUT = 2.0

log = structlog.get_logger("gateway.app")


async def _database_ok(pool: asyncpg.Pool) -> bool:
    try:
        async with asyncio.timeout(_DB_CHECK_TIMEOUT):
            return bool(await pool.fetchval("SELECT 1") == 1)
    except Exception as exc:  # any failure of the probe means "unavailable"
        log.warning("database_check_failed", error=type(exc).__name__)
        return False


async def ping(request: web.Request) -> web.Response:
    """Liveness and database reachability, without authentication."""
    database = await _database_ok(request.app[POOL])
    data = {
        "status": "ok" if database else "degraded",
        "version": __version__,
        "database": "ok" if database else "unavailable",
    }
    return ok(data, status=200 if database else 503)


def create_app(settings: Settings, pool: asyncpg.Pool, runtime: Runtime | None = None) -> web.Application:
    """The HTTP application; with a runtime it also serves AS4 (``/as4``) and the SMP (``/smp``)."""
    app = web.Application(
        middlewares=[
            request_context,
            auth_middleware(lambda request: request.app[POOL]),
            RateLimiter(settings.rate_limit, 60.0).middleware(),
        ],
        client_max_size=settings.max_message_bytes,
    )
    app[SETTINGS] = settings
    app[POOL] = pool
    app.router.add_get("/v1/ping", ping)
    app.router.add_get("/v1/openapi.json", serve_openapi)
    if runtime is not None:
        app[RUNTIME] = runtime
        add_account_routes(app)
        add_document_routes(app)
        add_notification_routes(app)
        inbound = InboundEndpoint(
            pool,
            runtime.identity,
            runtime.trust,
            max_message_bytes=settings.max_message_bytes,
            max_payload_bytes=settings.max_payload_bytes,
        )
        app.router.add_post("/as4", inbound.handle)
        source = DatabaseSmpSource(pool, runtime.as4_url, runtime.identity.cert, "mailto:ops@localhost")
        smp_app = smp_application(source, runtime.smp_identity.key, runtime.smp_identity.cert, runtime.smp_url)
        mount_smp(app, "/smp", smp_app)
    return app
