"""Operator views of this access point's Peppol duties (``/v1/operator/reports``, endpoints),
and moving participants between SMPs in the SML (``/v1/operator/migrations/out`` and ``/in``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

import smp
from gateway.api.accounts import RUNTIME, _json, _pool
from gateway.api.auth import require, require_company_access
from gateway.api.envelope import ApiError, ok
from gateway.api.keys import SERVICES
from gateway.directory import queries as directory_queries
from gateway.directory import sml
from gateway.directory.errors import NotFound, SmlRefused, SmlUnavailable
from gateway.directory.profiles import profile_view
from gateway.duties import queries as duties_queries
from gateway.duties.errors import ReportError
from gateway.duties.mls_levels import LEVELS
from gateway.duties.report_documents import month_period
from gateway.duties.reporting import KINDS, due_date
from gateway.duties.states import ReportState
from gateway.inbound.processing import MLS_STATES
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


def _month(raw: str | None) -> tuple[str, datetime, datetime]:
    """The month asked for (this month when none), as its first and next month's first instant."""
    month = raw or f"{datetime.now(UTC):%Y-%m}"
    try:
        start, end = month_period(month)
    except ValueError:
        raise ApiError(400, "validation_error", "month is YYYY-MM", {"field": "month"}) from None
    lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hi = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return month, lo, hi


async def mls_service_levels(request: web.Request) -> web.Response:
    """MLS-1 (we send the MLS within 20 minutes of the receipt) and MLS-2 (we receive it within
    25 minutes of our sending) for a month: totals and per partner access point."""
    require(request, "operator")
    month, start, end = _month(request.query.get("month"))
    levels = []
    for level in LEVELS:
        total, partners = await duties_queries.mls_figures(request.app[RUNTIME].pool, level, start, end, MLS_STATES)
        levels.append(
            {
                "level": level.name,
                "role": level.role,
                "limit_minutes": level.limit.total_seconds() / 60,
                "target": level.target,
                **total.as_json(level),
                "partners": [p.as_json(level) for p in partners],
            }
        )
    return ok({"month": month, "levels": levels})


def _management(request: web.Request) -> smp.SmlManagementClient:
    registrar = request.app[RUNTIME].registrar
    if not isinstance(registrar, smp.SmlManagementClient):
        raise ApiError(409, "sml_unavailable", "this gateway does not reach an SML management interface")
    return registrar


async def _operator_participant(request: web.Request, body: dict[str, Any]) -> smp.ParticipantId:
    """The participant named in the body, one of a company the operator manages."""
    principal = require(request, "operator")
    raw = body.get("participant_id")
    if not isinstance(raw, str) or not raw.strip():
        raise ApiError(400, "validation_error", "participant_id is required", {"field": "participant_id"})
    try:
        participant = smp.ParticipantId.parse(raw)
    except smp.IdentifierError as exc:
        raise ApiError(400, "validation_error", str(exc), {"field": "participant_id"}) from None
    owner = await directory_queries.participant_company(_pool(request), participant)
    if owner is None:
        raise ApiError(404, "not_found", f"{participant} is not registered here")
    await require_company_access(_pool(request), principal, owner)
    return participant


def _sml_error(exc: SmlRefused | SmlUnavailable | NotFound) -> ApiError:
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, SmlUnavailable):
        return ApiError(409, "sml_unavailable", str(exc))
    return ApiError(502, "sml_refused", str(exc), {"fault": exc.fault})


async def migrate_out(request: web.Request) -> web.Response:
    """Prepare a participant's move to another SMP: the key for the new SMP's operator."""
    body = await _json(request)
    participant = await _operator_participant(request, body)
    try:
        key = await sml.migrate_out(_management(request), participant)
    except SmlRefused as exc:
        raise _sml_error(exc) from None
    return ok({"participant_id": str(participant), "migration_key": key}, status=201)


async def migrate_in(request: web.Request) -> web.Response:
    """Take a participant over from its current SMP with the key that SMP announced."""
    body = await _json(request)
    participant = await _operator_participant(request, body)
    key = body.get("migration_key")
    if not isinstance(key, str) or not key:
        raise ApiError(400, "validation_error", "migration_key is required", {"field": "migration_key"})
    try:
        profiles = await sml.migrate_in(_pool(request), _management(request), participant, key)
    except (SmlRefused, NotFound) as exc:
        raise _sml_error(exc) from None
    return ok({"participant_id": str(participant), "profiles": [profile_view(p) for p in profiles]})


def add_operator_routes(app: web.Application) -> None:
    app.router.add_get("/v1/operator/reports", list_reports)
    app.router.add_post("/v1/operator/reports", build_report)
    app.router.add_get("/v1/operator/endpoints", list_endpoints)
    app.router.add_get("/v1/operator/mls", mls_service_levels)
    app.router.add_post("/v1/operator/migrations/out", migrate_out)
    app.router.add_post("/v1/operator/migrations/in", migrate_in)
