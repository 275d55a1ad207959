"""``peppol-gateway serve``: run the HTTP service and the outbound workers until SIGTERM or
SIGINT, then stop cleanly (stop accepting, finish in-flight requests, stop workers, close)."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from gateway.api.app import create_app
from gateway.core.config import Settings
from gateway.core.database import create_pool
from gateway.core.metrics import METRICS
from gateway.core.tracing import configure_tracing
from gateway.core.version import __version__
from gateway.dev.postgres import database_url
from gateway.runtime import build_runtime
from gateway.webhooks.delivery import WebhookWorker

__all__ = ["serve"]

log = structlog.get_logger("gateway.cli.serve")


async def serve(settings: Settings) -> None:
    """Start everything, wait for a stop signal, then shut down in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    configure_tracing(settings)
    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        runtime = None
        workers: asyncio.Task[None] | None = None
        webhook_task: asyncio.Task[None] | None = None
        try:
            runtime = build_runtime(settings, pool)
            app = create_app(settings, pool, runtime)
            runner = web.AppRunner(
                app, shutdown_timeout=settings.shutdown_timeout, access_log=None, handle_signals=False
            )
            await runner.setup()
            site = web.TCPSite(
                runner, settings.listen_host, settings.listen_port, reuse_port=settings.reuse_port or None
            )
            await site.start()
            if settings.outbound_workers > 0:
                worker = runtime.outbound_worker(app[METRICS])
                workers = asyncio.create_task(worker.run(stop, settings.outbound_workers))
            if settings.webhook_workers > 0:
                hooks = WebhookWorker(
                    pool, poll_interval=settings.poll_interval, retry_every=settings.webhook_retry_interval,
                    give_up_after=settings.webhook_give_up_after, timeout=settings.webhook_timeout,
                )  # fmt: skip
                webhook_task = asyncio.create_task(hooks.run(stop))
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
            tasks = [t for t in (workers, webhook_task) if t is not None]
            pending: set[asyncio.Task[None]] = set()
            if tasks:
                _, (_, pending) = await asyncio.gather(
                    runner.cleanup(), asyncio.wait(tasks, timeout=settings.shutdown_timeout)
                )
            else:
                await runner.cleanup()
            if pending:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=5)
                log.info("gateway_released_work", tasks=len(pending))
        finally:
            for leftover in (workers, webhook_task):
                if leftover is not None and not leftover.done():
                    leftover.cancel()
            if runtime is not None:
                await runtime.close()
            await pool.close()
    log.info("gateway_stopped")
