"""Network health, for operators: the receiving endpoints' circuit breakers (state, failures in
a row, documents waiting), the outbound queue (depth by state and the oldest item, refreshed
live), and how long our AP and SMP certificates are still valid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.accounts import RUNTIME
from gateway.api.console.pages import render
from gateway.api.console.session import USER, pool_of
from gateway.outbound import queries as outbound_queries
from gateway.outbound.states import IN_FLIGHT
from gateway.security.certificates import WARN_DAYS
from gateway.security.identity import ApIdentity

__all__ = ["add_health_routes"]


@dataclass(frozen=True)
class CertificateLine:
    role: str
    subject: str
    not_after: datetime
    days_left: int

    @property
    def level(self) -> str:
        """ok, warn (within the warning period) or bad (expired)."""
        return "bad" if self.days_left <= 0 else "warn" if self.days_left <= WARN_DAYS else "ok"


def _certificate(role: str, identity: ApIdentity, now: datetime) -> CertificateLine:
    cert = identity.cert
    left = (cert.not_valid_after_utc - now).total_seconds() / 86400
    return CertificateLine(role, cert.subject.rfc4514_string(), cert.not_valid_after_utc, int(left // 1))


async def _queue(request: web.Request) -> dict[str, Any]:
    depth = {d.state: d for d in await outbound_queries.queue_depth(pool_of(request))}
    counts = {s: depth[s].count if s in depth else 0 for s in IN_FLIGHT}
    oldest = {s: round(depth[s].oldest_seconds) if s in depth else 0 for s in IN_FLIGHT}
    states = [{"state": str(s), "count": counts[s], "oldest_seconds": oldest[s]} for s in IN_FLIGHT]
    return {
        "total": sum(counts.values()),
        "oldest_seconds": max(oldest.values(), default=0),
        "states": states,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


async def health(request: web.Request) -> web.Response:
    request[USER].need_operator()
    runtime = request.config_dict[RUNTIME]
    now = datetime.now(UTC)
    certificates = [_certificate("Access point (AS4)", runtime.identity, now),
                    _certificate("SMP", runtime.smp_identity, now)]  # fmt: skip
    circuits = await outbound_queries.list_circuits(pool_of(request))
    return render(
        request, "health.html", title="Network health", circuits=circuits, queue=await _queue(request),
        certificates=certificates, warn_days=WARN_DAYS,
    )  # fmt: skip


async def queue_json(request: web.Request) -> web.Response:
    """The queue's depth, polled by the health page."""
    request[USER].need_operator()
    return web.json_response(await _queue(request))


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/api/queue", queue_json)
