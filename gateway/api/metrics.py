"""``GET /metrics``: the process's counters and histograms, and gauges read from each domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from gateway.core.database import database_unavailable
from gateway.core.metrics import METRICS, Gauges, certificate_gauge
from gateway.outbound import queries as outbound_queries
from gateway.outbound.states import CircuitState
from gateway.webhooks import queries as webhooks_queries
from gateway.webhooks.states import DeliveryState

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["database_gauges", "metrics_response"]

_CIRCUIT_WEIGHT = {CircuitState.OPEN: 1.0, CircuitState.HALF_OPEN: 0.5}  # closed circuits are not shown


async def database_gauges(pool: asyncpg.Pool) -> Gauges:
    """The queue, the webhook backlog and the open circuits, as the domains report them."""
    queue = await outbound_queries.queue_depth(pool)
    hooks = await webhooks_queries.unfinished_deliveries(pool)
    outbox = await webhooks_queries.outbox_backlog(pool)
    circuits = [c for c in await outbound_queries.list_circuits(pool) if c.state in _CIRCUIT_WEIGHT]
    return {
        "peppol_endpoint_circuit_open": (
            "Receiving endpoints whose circuit is open (1) or half open (0.5)",
            [({"endpoint": c.url}, _CIRCUIT_WEIGHT[c.state]) for c in circuits],
        ),
        "peppol_outbound_queue_depth": (
            "Outbound documents waiting, by state",
            [({"state": str(q.state)}, float(q.count)) for q in queue] or [({"state": "queued"}, 0.0)],
        ),
        "peppol_outbound_oldest_job_seconds": (
            "Age of the oldest waiting outbound document",
            [({}, max((q.oldest_seconds for q in queue), default=0.0))],
        ),
        "peppol_webhook_backlog": (
            "Webhook deliveries not yet done, and events not yet fanned out",
            [
                ({"status": str(DeliveryState.PENDING)}, float(hooks[DeliveryState.PENDING])),
                ({"status": str(DeliveryState.FAILED)}, float(hooks[DeliveryState.FAILED])),
                ({"status": "not_fanned_out"}, float(outbox)),
            ],
        ),
    }


async def metrics_response(app: web.Application, pool: asyncpg.Pool, runtime: Runtime | None) -> web.Response:
    """Prometheus text format; the database gauges are left out while the database is down."""
    gauges: Gauges = {}
    try:
        gauges.update(await database_gauges(pool))
    except Exception as exc:
        if not (database_unavailable(exc) or isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError)):
            raise
    if runtime is not None:
        gauges.update(certificate_gauge({"ap": runtime.identity.cert, "smp": runtime.smp_identity.cert}))
        gauges["peppol_smp_lookups"] = (
            "SMP client lookups by source",
            [
                ({"source": "cache"}, float(runtime.discovery.cache_hits)),
                ({"source": "smp"}, float(runtime.discovery.fetches)),
            ],
        )
    body = app[METRICS].render(gauges)
    return web.Response(text=body, content_type="text/plain", charset="utf-8", headers={"X-Content-Format": "0.0.4"})
