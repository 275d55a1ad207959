"""``peppol-gateway serve``: run the HTTP service until SIGTERM or SIGINT, then stop cleanly."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from gateway.app import create_app
from gateway.config import Settings
from gateway.database import create_pool, database_url
from gateway.version import __version__

__all__ = ["serve"]

log = structlog.get_logger("gateway.server")


async def serve(settings: Settings) -> None:
    """Start everything, wait for a stop signal, then stop accepting, drain, and close."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        try:
            app = create_app(settings, pool)
            runner = web.AppRunner(
                app,
                shutdown_timeout=settings.shutdown_timeout,
                access_log=None,
                handle_signals=False,
            )
            await runner.setup()
            site = web.TCPSite(runner, settings.listen_host, settings.listen_port)
            await site.start()
            port = runner.addresses[0][1] if runner.addresses else settings.listen_port
            log.info(
                "gateway_started",
                version=__version__,
                url=f"http://{settings.listen_host}:{port}",
                embedded_database=settings.database_url is None,
            )
            await stop.wait()
            log.info("gateway_stopping")
            await runner.cleanup()
        finally:
            await pool.close()
    log.info("gateway_stopped")
