"""Finding receivers and being found: ``GET /v1/participants/{participant}`` (can it receive this,
and where would it go), the Peppol Directory's business card of a company
(``/v1/company/business_card``, ``/v1/companies/{id}/business_card``), the indexer notifications
for operators, and ``GET /v1/directory/search``."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from cryptography import x509

import smp
from gateway.api.accounts import RUNTIME, _directory_error, _json, _pool, _uuid
from gateway.api.auth import Principal, require, require_company_access
from gateway.api.envelope import ApiError, ok
from gateway.directory import queries as directory_queries
from gateway.directory.business_cards import card_changes, default_card, save_card
from gateway.directory.discovery import (
    discover_participant,
    failure_reason,
    report_json,
    wanted_document_types,
)
from gateway.directory.errors import Invalid
from gateway.directory.queries import IndexerNotification
from gateway.directory.search import SearchUnavailable, search_directory
from gateway.directory.states import NotificationState

__all__ = ["add_directory_routes"]


# -- discovery -------------------------------------------------------------------------------------


def _query_text(request: web.Request, name: str, limit: int = 500) -> str | None:
    value = request.query.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > limit:
        raise ApiError(400, "validation_error", f"{name} is at most {limit} characters", {"field": name})
    return value.strip()


async def participant_check(request: web.Request) -> web.Response:
    """Where documents to a participant would go, what it receives, and whether our checks pass."""
    require(request)
    runtime = request.app[RUNTIME]
    try:
        participant = smp.ParticipantId.parse(request.match_info["participant"])
    except smp.IdentifierError as exc:
        raise ApiError(
            400, "validation_error", str(exc), {"field": "participant", "rule": exc.rule, "value": exc.value}
        ) from None
    document_type = _query_text(request, "document_type")
    profile = _query_text(request, "profile", 100)
    try:
        wanted = wanted_document_types(document_type, profile, _query_text(request, "profile_version", 50))
        process_text = _query_text(request, "process")
        process = smp.ProcessId.parse(process_text) if process_text else None
    except smp.IdentifierError as exc:
        raise ApiError(400, "validation_error", str(exc), {"field": exc.field, "rule": exc.rule}) from None
    except KeyError as exc:
        raise ApiError(400, "validation_error", str(exc.args[0]), {"field": "profile"}) from None

    async def trusted(cert: x509.Certificate) -> None:
        await runtime.trust.check(cert)

    try:
        report = await discover_participant(runtime.discovery, participant, trusted, wanted=wanted, process=process)
    except smp.DiscoveryError as exc:  # DNS or an SMP down: worth asking again shortly
        raise ApiError(503, "discovery_unavailable", failure_reason(exc)) from None
    return ok(report_json(report))


async def directory_search(request: web.Request) -> web.Response:
    """Search the Peppol Directory by name, identifier or country."""
    require(request)
    query = _query_text(request, "q", 200)
    country = _query_text(request, "country", 2)
    if query is None and country is None:
        raise ApiError(400, "validation_error", "give q or country (or both)", {"field": "q"})
    if country is not None and (len(country) != 2 or not country.isascii() or not country.isalpha()):
        raise ApiError(400, "validation_error", "country is an ISO 3166 alpha-2 code", {"field": "country"})
    raw_limit = request.query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise ApiError(400, "validation_error", "limit is 1..100", {"field": "limit"})
    url = request.app[RUNTIME].settings.directory_search_url
    try:
        result = await search_directory(
            url, query=query, country=country.upper() if country else None, limit=int(raw_limit)
        )
    except SearchUnavailable as exc:
        raise ApiError(503, "directory_unavailable", str(exc)) from None
    return ok({"total": result.total, "matches": list(result.matches)})


# -- business cards --------------------------------------------------------------------------------


def _notification_json(n: IndexerNotification) -> dict[str, Any]:
    def stamp(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": n.id,
        "participant": str(n.participant),
        "company_id": str(n.company_id) if n.company_id else None,
        "action": str(n.action),
        "status": str(n.state),
        "attempts": n.attempts,
        "last_status": n.last_status,
        "last_error": n.last_error,
        "next_attempt_at": stamp(n.next_attempt_at) if n.state is NotificationState.PENDING else None,
        "queued_at": stamp(n.queued_at),
        "sent_at": stamp(n.sent_at),
        "updated_at": stamp(n.updated_at),
    }


async def _card_answer(request: web.Request, company_id: uuid.UUID) -> dict[str, Any]:
    runtime = request.app[RUNTIME]
    pool = runtime.pool
    company = await directory_queries.company(pool, company_id)
    if company is None:
        raise ApiError(404, "not_found", "no such company")
    stored = await directory_queries.business_card(pool, company_id)
    card = stored.card if stored else default_card(company)
    participants = await directory_queries.company_participants(pool, company_id)
    notifications = await directory_queries.indexer_notifications(pool, company_id=company_id, limit=50)
    return {
        "company_id": str(company_id),
        "publish": bool(stored and stored.publish),
        "stored": stored is not None,
        "served": bool(stored and stored.publish and company.verified),
        "name": card["names"][0]["name"],
        **card,
        "participants": [str(p) for p in participants],
        "business_card_urls": [f"{runtime.smp_url}/businesscard/{p.url_segment}" for p in participants],
        "updated_at": stored.updated_at.isoformat() if stored else None,
        "directory": {
            "indexer_configured": bool(runtime.settings.directory_indexer_url),
            "notifications": [_notification_json(n) for n in notifications],
        },
    }


async def _put_card(request: web.Request, company_id: uuid.UUID) -> web.Response:
    runtime = request.app[RUNTIME]
    company = await directory_queries.company(runtime.pool, company_id)
    if company is None:
        raise ApiError(404, "not_found", "no such company")
    body = await _json(request)
    try:
        publish, card = card_changes(body, company)
    except Invalid as exc:
        raise _directory_error(exc) from None
    notify = bool(runtime.settings.directory_indexer_url)
    await save_card(runtime.pool, company_id, publish, card, notify=notify)
    for participant in await directory_queries.company_participants(runtime.pool, company_id):
        runtime.discovery.forget(participant)  # our own answers about it changed
    if notify:
        runtime.directory_wake.set()
    return ok(await _card_answer(request, company_id))


def _own_company(principal: Principal) -> uuid.UUID:
    assert principal.company_id is not None
    return principal.company_id


async def get_own_card(request: web.Request) -> web.Response:
    principal = require(request, "company")
    return ok(await _card_answer(request, _own_company(principal)))


async def put_own_card(request: web.Request) -> web.Response:
    principal = require(request, "company", "profiles:write")
    return await _put_card(request, _own_company(principal))


async def get_company_card(request: web.Request) -> web.Response:
    principal = require(request)
    company_id = _uuid(request.match_info["company_id"], "company")
    await require_company_access(_pool(request), principal, company_id)
    return ok(await _card_answer(request, company_id))


async def put_company_card(request: web.Request) -> web.Response:
    principal = require(request)
    if principal.kind == "company":
        require(request, "profiles:write")
    company_id = _uuid(request.match_info["company_id"], "company")
    await require_company_access(_pool(request), principal, company_id)
    return await _put_card(request, company_id)


# -- the indexer's notifications, for operators -----------------------------------------------------


async def list_notifications(request: web.Request) -> web.Response:
    principal = require(request, "operator")
    raw_state = request.query.get("status")
    try:
        state = NotificationState(raw_state) if raw_state else None
    except ValueError:
        raise ApiError(
            400, "validation_error", f"status is one of {', '.join(NotificationState)}", {"field": "status"}
        ) from None
    notifications = await directory_queries.indexer_notifications(
        _pool(request), operator_id=principal.operator_id, state=state
    )
    return ok([_notification_json(n) for n in notifications])


async def retry_notification(request: web.Request) -> web.Response:
    principal = require(request, "operator")
    raw = request.match_info["notification_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, "not_found", "no such notification")
    assert principal.operator_id is not None
    notification = await directory_queries.retry_indexer_notification(_pool(request), int(raw), principal.operator_id)
    if notification is None:
        raise ApiError(404, "not_found", "no such notification")
    request.app[RUNTIME].directory_wake.set()
    return ok(_notification_json(notification))


def add_directory_routes(app: web.Application) -> None:
    app.router.add_get("/v1/participants/{participant}", participant_check)
    app.router.add_get("/v1/directory/search", directory_search)
    app.router.add_get("/v1/company/business_card", get_own_card)
    app.router.add_put("/v1/company/business_card", put_own_card)
    app.router.add_get("/v1/companies/{company_id}/business_card", get_company_card)
    app.router.add_put("/v1/companies/{company_id}/business_card", put_company_card)
    app.router.add_get("/v1/operator/directory_notifications", list_notifications)
    app.router.add_post("/v1/operator/directory_notifications/{notification_id}/retry", retry_notification)
