"""Operator views of this access point's Peppol duties: ``/v1/operator/reports``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.accounts import RUNTIME, _json
from gateway.api.auth import require
from gateway.api.envelope import ApiError, ok
from gateway.api.keys import SERVICES
from gateway.duties import queries as duties_queries
from gateway.duties.errors import ReportError
from gateway.duties.reporting import KINDS, due_date
from gateway.duties.states import ReportState
from gateway.outbound import queries as outbound_queries

__all__ = ["add_operator_routes"]


def _report_json(report: duties_queries.ReportRow) -> dict[str, Any]:
    validation = json.loads(report.validation)
    status = report.state
    due = due_date(report.period_end)
    return {
        "id": report.id,
        "kind": report.kind,
        "month": f"{report.period_start:%Y-%m}",
        "period": {"start": report.period_start.isoformat(), "end": report.period_end.isoformat()},
        "status": str(status),
        "valid": report.valid,
        "errors": validation.get("errors", []),
        "rules": validation.get("artefacts", {}),
        "document": f"s{report.outbound_id}" if report.outbound_id else None,
        "receipt": bool(report.has_receipt),
        "sent_at": report.delivered_at.isoformat() if report.delivered_at else None,
        "last_error": report.last_error,
        "due": due.isoformat(),
        "overdue": status is not ReportState.SENT and datetime.now(UTC).date() > due,
        "updated_at": report.updated_at.isoformat(),
    }


async def list_reports(request: web.Request) -> web.Response:
    require(request, "operator")
    reports = await duties_queries.list_reports(request.app[RUNTIME].pool)
    return ok([_report_json(r) for r in reports])


async def build_report(request: web.Request) -> web.Response:
    """Build (and with ``"send": true`` send) a month's report now."""
    require(request, "operator")
    body = await _json(request)
    kind, month = body.get("kind"), body.get("month")
    if kind not in KINDS:
        raise ApiError(400, "validation_error", "kind is TSR or EUSR", {"field": "kind"})
    if not isinstance(month, str):
        raise ApiError(400, "validation_error", "month is YYYY-MM", {"field": "month"})
    services = request.app.get(SERVICES)
    if services is None:
        raise ApiError(503, "unavailable", "reporting is starting")
    service = services.reports
    try:
        report = await service.build(kind, month)
        if body.get("send") is True:
            await service.send(report)
    except ReportError as exc:
        status = 400 if exc.code in ("invalid_month", "unknown_report") else 409
        raise ApiError(status, exc.code, exc.message) from None
    stored = await duties_queries.report_row(request.app[RUNTIME].pool, kind, report.start)
    assert stored is not None
    return ok(_report_json(stored), status=201)


async def list_endpoints(request: web.Request) -> web.Response:
    """Receiving endpoints with a circuit breaker history: state, failures, documents waiting."""
    require(request, "operator")
    rows = await outbound_queries.list_circuits(request.app[RUNTIME].pool)
    return ok(
        [
            {
                "endpoint": r.url,
                "state": r.state,
                "consecutive_failures": r.failures,
                "cooldown_seconds": r.cooldown,
                "documents_waiting": r.waiting,
                "updated_at": r.updated_at.isoformat(),
            }
            for r in rows
        ]
    )


def add_operator_routes(app: web.Application) -> None:
    app.router.add_get("/v1/operator/reports", list_reports)
    app.router.add_post("/v1/operator/reports", build_report)
    app.router.add_get("/v1/operator/endpoints", list_endpoints)
