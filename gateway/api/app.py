"""The aiohttp application: routes, middleware and the shared resources they use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from gateway.api.accounts import RUNTIME, add_account_routes
from gateway.api.answers import add_response_routes
from gateway.api.auth import auth_middleware
from gateway.api.documents import add_document_routes
from gateway.api.envelope import ok
from gateway.api.middleware import request_context
from gateway.api.notifications import add_notification_routes
from gateway.api.openapi import serve_openapi
from gateway.api.operator import add_operator_routes
from gateway.api.ratelimit import RateLimiter
from gateway.core.config import Settings
from gateway.core.metrics import METRICS, Metrics, certificate_gauge, database_gauges
from gateway.core.migrate import load_migrations
from gateway.core.version import __version__
from gateway.directory.smp_source import DatabaseSmpSource
from gateway.duties.archive import Archiver
from gateway.inbound.endpoint import InboundEndpoint
from gateway.runtime import Runtime
from gateway.security.certificates import CertificateWatcher, WatchedIdentity
from smp import mount_smp, smp_application

__all__ = ["POOL", "SETTINGS", "create_app"]

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)

_DB_CHECK_TIMEOUT = 2.0

log = structlog.get_logger("gateway.api.app")


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


async def ready(request: web.Request) -> web.Response:
    """Ready for traffic: the database answers and its schema is the one this code expects."""
    pool = request.app[POOL]
    expected = max(m.version for m in load_migrations())
    try:
        async with asyncio.timeout(_DB_CHECK_TIMEOUT):
            current = await pool.fetchval("SELECT max(version) FROM schema_migrations")
    except Exception as exc:  # any failure of the probe means "not ready"
        log.warning("readiness_check_failed", error=type(exc).__name__)
        current = None
    is_ready = current == expected
    data = {"status": "ready" if is_ready else "not_ready", "schema": current, "expected_schema": expected}
    return ok(data, status=200 if is_ready else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text format."""
    gauges: dict[str, Any] = {}
    try:
        gauges.update(await database_gauges(request.app[POOL]))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        pass
    runtime = request.app.get(RUNTIME)
    if runtime is not None:
        gauges.update(certificate_gauge({"ap": runtime.identity.cert, "smp": runtime.smp_identity.cert}))
        gauges["peppol_smp_lookups"] = (
            "SMP client lookups by source",
            [
                ({"source": "cache"}, float(runtime.discovery.cache_hits)),
                ({"source": "smp"}, float(runtime.discovery.fetches)),
            ],
        )
    body = request.app[METRICS].render(gauges)
    return web.Response(text=body, content_type="text/plain", charset="utf-8", headers={"X-Content-Format": "0.0.4"})


async def _background_work(app: web.Application) -> AsyncIterator[None]:
    """Start-up: register this access point's SPID; then, while the app runs, the inbound
    processor (validation, MLS, linking answers), the certificate watcher, the monthly reporting
    schedule and the archiver."""
    from gateway.duties.provider import ensure_provider
    from gateway.inbound.processing import InboundProcessor

    runtime = app[RUNTIME]
    settings = app[SETTINGS]
    runtime.provider = await ensure_provider(runtime.pool, runtime.identity, runtime.registrar)
    runtime.reports = runtime.report_service(runtime.provider)
    processor = InboundProcessor(
        runtime.pool, runtime.provider, runtime.validate, retry_window=settings.retry_window,
        poll_interval=settings.poll_interval, lease_seconds=settings.lease_seconds,
    )  # fmt: skip
    runtime.processor = processor
    watcher = CertificateWatcher(
        [
            WatchedIdentity("ap", runtime.identity, settings.ap_key, settings.ap_cert),
            WatchedIdentity("smp", runtime.smp_identity, settings.smp_key, settings.smp_cert),
        ],
        runtime.pool,
        interval=settings.reload_interval,
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(processor.run(stop)) for _ in range(settings.inbound_workers)]
    tasks.append(asyncio.create_task(watcher.run(stop)))
    if settings.reporting_schedule:
        tasks.append(asyncio.create_task(runtime.reports.run(stop)))
    if runtime.archive is not None:
        archiver = Archiver(
            runtime.pool, runtime.archive, after_days=settings.archive_after_days,
            retention_days=settings.archive_retention_days,
        )  # fmt: skip
        tasks.append(asyncio.create_task(archiver.run(stop, settings.archive_interval)))
    yield
    stop.set()
    for task in tasks:
        try:
            await asyncio.wait_for(task, settings.shutdown_timeout)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        except Exception as exc:  # a background task that failed must not fail the shutdown
            log.error("background_task_failed", error=type(exc).__name__, reason=str(exc)[:300])


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
    app[METRICS] = Metrics()
    app.router.add_get("/v1/ping", ping)
    app.router.add_get("/v1/ready", ready)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/v1/openapi.json", serve_openapi)
    if runtime is not None:
        app[RUNTIME] = runtime
        add_account_routes(app)
        add_document_routes(app)
        add_notification_routes(app)
        add_response_routes(app)
        add_operator_routes(app)
        inbound = InboundEndpoint(
            pool,
            runtime.identity,
            runtime.trust,
            max_message_bytes=settings.max_message_bytes,
            max_payload_bytes=settings.max_payload_bytes,
            metrics=app[METRICS],
            on_pending=lambda: runtime.processor.wake() if runtime.processor is not None else None,
        )
        app.router.add_post("/as4", inbound.handle)
        app.cleanup_ctx.append(_background_work)
        source = DatabaseSmpSource(pool, runtime.as4_url, runtime.identity, "mailto:ops@localhost")
        smp_app = smp_application(
            source, lambda: (runtime.smp_identity.key, runtime.smp_identity.cert), None, runtime.smp_url
        )
        mount_smp(app, "/smp", smp_app)
    return app
