"""``peppol-gateway serve``: run the HTTP service and its background work until SIGTERM or
SIGINT, then stop cleanly (stop accepting, finish in-flight requests and deliveries, close)."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from gateway.api.app import create_app
from gateway.core.config import Settings
from gateway.core.database import create_pool
from gateway.core.tracing import configure_tracing
from gateway.core.version import __version__
from gateway.dev.postgres import database_url
from gateway.runtime import build_runtime, check_validation_available
from gateway.security.anchors import check_own_certificates

__all__ = ["serve"]

log = structlog.get_logger("gateway.cli.serve")


async def serve(settings: Settings) -> None:
    """Start everything, wait for a stop signal, then shut down in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    check_own_certificates(settings)  # before anything starts: a wrong PKI or network stops here
    configure_tracing(settings)
    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        runtime = None
        try:
            await check_validation_available(settings, pool)
            runtime = build_runtime(settings, pool)
            app = create_app(settings, pool, runtime)
            runner = web.AppRunner(
                app, shutdown_timeout=settings.shutdown_timeout, access_log=None, handle_signals=False
            )
            await runner.setup()  # starts the background services (gateway.runtime.start_services)
            site = web.TCPSite(
                runner, settings.listen_host, settings.listen_port, reuse_port=settings.reuse_port or None
            )
            await site.start()
            log.info(
                "gateway_started",
                version=__version__,
                url=runtime.public_url,
                seat_id=runtime.identity.seat_id,
                embedded_database=settings.database_url is None,
            )
            await stop.wait()
            # Drain: stop accepting, let in-flight AS4 and API requests finish and workers end
            # their current delivery, all within the grace period; deliveries still running
            # then are cancelled and their jobs released to the queue.
            log.info("gateway_stopping", grace_seconds=settings.shutdown_timeout)
            await runner.cleanup()
        finally:
            if runtime is not None:
                await runtime.close()
            await pool.close()
    log.info("gateway_stopped")
