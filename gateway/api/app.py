"""The aiohttp application: routes, middleware and the shared resources they use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import structlog
from aiohttp import web

from gateway.api.accounts import RUNTIME, add_account_routes
from gateway.api.answers import add_response_routes
from gateway.api.auth import auth_middleware
from gateway.api.console import add_console
from gateway.api.directory import add_directory_routes
from gateway.api.docs import add_docs_routes
from gateway.api.documents import add_document_routes
from gateway.api.envelope import ok
from gateway.api.keys import SERVICES
from gateway.api.mcp import add_mcp_routes
from gateway.api.metrics import metrics_response
from gateway.api.middleware import request_context
from gateway.api.notifications import add_notification_routes
from gateway.api.openapi import serve_openapi
from gateway.api.operator import add_operator_routes
from gateway.api.ratelimit import RateLimiter
from gateway.core import queries as core_queries
from gateway.core.config import Settings
from gateway.core.metrics import METRICS, Metrics
from gateway.core.migrate import load_migrations
from gateway.core.version import __version__
from gateway.directory.business_cards import DatabaseCardSource
from gateway.directory.smp_source import DatabaseSmpSource
from gateway.inbound.endpoint import InboundEndpoint
from gateway.runtime import Runtime, start_services
from smp import mount_smp, smp_application

__all__ = ["POOL", "SERVICES", "SETTINGS", "create_app"]

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)

_DB_CHECK_TIMEOUT = 2.0

log = structlog.get_logger("gateway.api.app")


async def _database_ok(pool: asyncpg.Pool) -> bool:
    try:
        async with asyncio.timeout(_DB_CHECK_TIMEOUT):
            return await core_queries.database_answers(pool)
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


async def ready(request: web.Request) -> web.Response:
    """Ready for traffic: the database answers and its schema is the one this code expects."""
    pool = request.app[POOL]
    expected = max(m.version for m in load_migrations())
    try:
        async with asyncio.timeout(_DB_CHECK_TIMEOUT):
            current = await core_queries.schema_version(pool)
    except Exception as exc:  # any failure of the probe means "not ready"
        log.warning("readiness_check_failed", error=type(exc).__name__)
        current = None
    is_ready = current == expected
    data = {"status": "ready" if is_ready else "not_ready", "schema": current, "expected_schema": expected}
    return ok(data, status=200 if is_ready else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text format."""
    return await metrics_response(request.app, request.app[POOL], request.app.get(RUNTIME))


async def _services(app: web.Application) -> AsyncIterator[None]:
    """The gateway's background work lives as long as the app: started with it, told to stop as
    soon as shutdown begins (so deliveries end while requests drain), and awaited at cleanup."""
    services = await start_services(app[RUNTIME])
    app[SERVICES] = services

    async def begin_stop(_: web.Application) -> None:
        services.lifecycle.stop_event.set()

    app.on_shutdown.append(begin_stop)
    yield
    cancelled = await services.stop()
    if cancelled:
        log.info("gateway_released_work", tasks=cancelled)


def create_app(settings: Settings, pool: asyncpg.Pool, runtime: Runtime | None = None) -> web.Application:
    """The HTTP application; with a runtime it also serves AS4 (``/as4``) and the SMP (``/smp``)."""
    limiter = RateLimiter(lambda request: request.app[POOL], settings.rate_limit, 60.0)
    app = web.Application(
        middlewares=[
            request_context,
            auth_middleware(lambda request: request.app[POOL], limiter.rule),
            limiter.middleware(),
        ],
        client_max_size=settings.max_message_bytes,
    )
    app[SETTINGS] = settings
    app[POOL] = pool
    app[METRICS] = runtime.metrics if runtime is not None else Metrics()
    app.router.add_get("/v1/ping", ping)
    app.router.add_get("/v1/ready", ready)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/v1/openapi.json", serve_openapi)
    add_docs_routes(app)
    if runtime is not None:
        app[RUNTIME] = runtime
        add_account_routes(app)
        add_document_routes(app)
        add_notification_routes(app)
        add_response_routes(app)
        add_operator_routes(app)
        add_mcp_routes(app)
        add_console(app)
        add_directory_routes(app)
        inbound = InboundEndpoint(
            pool,
            runtime.identity,
            runtime.trust,
            max_message_bytes=settings.max_message_bytes,
            max_payload_bytes=settings.max_payload_bytes,
            metrics=app[METRICS],
            on_pending=runtime.inbound_wake.set,
        )
        app.router.add_post("/as4", inbound.handle)
        app.cleanup_ctx.append(_services)
        source = DatabaseSmpSource(pool, runtime.as4_url, runtime.identity, "mailto:ops@localhost")
        smp_app = smp_application(
            source,
            lambda: (runtime.smp_identity.key, runtime.smp_identity.cert),
            None,
            runtime.smp_url,
            cards=DatabaseCardSource(pool),
        )
        mount_smp(app, "/smp", smp_app)
    return app
