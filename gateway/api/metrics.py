"""``GET /metrics``: the process's counters and histograms, and gauges read from each domain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from gateway.core.database import database_unavailable
from gateway.core.metrics import METRICS, Gauges, certificate_gauge
from gateway.duties import queries as duties_queries
from gateway.duties.mls_levels import LEVELS
from gateway.inbound.processing import MLS_STATES
from gateway.outbound import queries as outbound_queries
from gateway.outbound.states import CircuitState, OutboundState
from gateway.webhooks import queries as webhooks_queries
from gateway.webhooks.states import DeliveryState

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["database_gauges", "metrics_response", "mls_gauges"]

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
            [({"state": str(q.state)}, float(q.count)) for q in queue] or [({"state": str(OutboundState.QUEUED)}, 0.0)],
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


async def mls_gauges(pool: asyncpg.Pool, now: datetime | None = None) -> Gauges:
    """This month's MLS service levels (MLS-1 as the receiving access point, MLS-2 as the
    sending one), in total (``partner=""``) and per partner access point."""
    now = now or datetime.now(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    share: list[tuple[dict[str, str], float]] = []
    p99: list[tuple[dict[str, str], float]] = []
    p50: list[tuple[dict[str, str], float]] = []
    waiting: list[tuple[dict[str, str], float]] = []
    for level in LEVELS:
        total, partners = await duties_queries.mls_figures(pool, level, start, end, MLS_STATES, now)
        for figures in (total, *partners):
            labels = {"level": level.name, "partner": figures.partner or ""}
            if figures.share_within_limit is not None:
                share.append((labels, figures.share_within_limit))
            if figures.p99_seconds is not None and figures.p50_seconds is not None:
                p99.append((labels, figures.p99_seconds))
                p50.append((labels, figures.p50_seconds))
            waiting.append((labels, float(figures.waiting + figures.overdue)))
    return {
        "peppol_mls_within_limit_ratio": ("Share of this month's MLS within the level's limit", share),
        "peppol_mls_p50_seconds": ("Median time to the MLS this month", p50),
        "peppol_mls_p99_seconds": ("99th percentile of the time to the MLS this month", p99),
        "peppol_mls_waiting": ("Documents of this month still without the MLS they are owed", waiting),
    }


async def metrics_response(app: web.Application, pool: asyncpg.Pool, runtime: Runtime | None) -> web.Response:
    """Prometheus text format; the database gauges are left out while the database is down."""
    gauges: Gauges = {}
    try:
        gauges.update(await database_gauges(pool))
        gauges.update(await mls_gauges(pool))
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
