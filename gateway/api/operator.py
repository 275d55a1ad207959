"""Operator views of this access point's Peppol duties: ``/v1/operator/reports``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.accounts import RUNTIME, _json
from gateway.api.auth import require
from gateway.api.envelope import ApiError, ok
from gateway.duties import queries as duties_queries
from gateway.duties.reporting import KINDS, ReportError, due_date
from gateway.outbound import queries as outbound_queries
from gateway.outbound.states import OutboundState

__all__ = ["add_operator_routes"]


def _status(row: Any) -> str:
    """built → (invalid) → queued → sent (receipt received) or failed."""
    if not row["valid"]:
        return "invalid"
    if row["outbound_id"] is None:
        return "built"
    return {OutboundState.DELIVERED: "sent", OutboundState.FAILED: "failed"}.get(row["outbound_state"], "queued")


def _report_json(row: Any) -> dict[str, Any]:
    validation = json.loads(row["validation"])
    status = _status(row)
    due = due_date(row["period_end"])
    return {
        "id": row["id"],
        "kind": row["kind"],
        "month": f"{row['period_start']:%Y-%m}",
        "period": {"start": row["period_start"].isoformat(), "end": row["period_end"].isoformat()},
        "status": status,
        "valid": row["valid"],
        "errors": validation.get("errors", []),
        "rules": validation.get("artefacts", {}),
        "document": f"s{row['outbound_id']}" if row["outbound_id"] else None,
        "receipt": bool(row["has_receipt"]),
        "sent_at": row["delivered_at"].isoformat() if row["delivered_at"] else None,
        "last_error": row["last_error"],
        "due": due.isoformat(),
        "overdue": status != "sent" and datetime.now(UTC).date() > due,
        "updated_at": row["updated_at"].isoformat(),
    }


async def list_reports(request: web.Request) -> web.Response:
    require(request, "operator")
    rows = await duties_queries.list_reports(request.app[RUNTIME].pool)
    return ok([_report_json(r) for r in rows])


async def build_report(request: web.Request) -> web.Response:
    """Build (and with ``"send": true`` send) a month's report now."""
    require(request, "operator")
    body = await _json(request)
    kind, month = body.get("kind"), body.get("month")
    if kind not in KINDS:
        raise ApiError(400, "validation_error", "kind is TSR or EUSR", {"field": "kind"})
    if not isinstance(month, str):
        raise ApiError(400, "validation_error", "month is YYYY-MM", {"field": "month"})
    service = request.app[RUNTIME].reports
    if service is None:
        raise ApiError(503, "unavailable", "reporting is starting")
    try:
        report = await service.build(kind, month)
        if body.get("send") is True:
            await service.send(report)
    except ReportError as exc:
        status = 400 if exc.code in ("invalid_month", "unknown_report") else 409
        raise ApiError(status, exc.code, exc.message) from None
    row = next(r for r in await duties_queries.list_reports(request.app[RUNTIME].pool, 1000) if r["kind"] == kind
               and f"{r['period_start']:%Y-%m}" == month)  # fmt: skip
    return ok(_report_json(row), status=201)


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
