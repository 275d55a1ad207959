"""Webhook registrations (``/v1/company/notifications``) and their deliveries."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from gateway.api.accounts import RUNTIME, _json, _uuid
from gateway.api.auth import Principal, require
from gateway.api.envelope import ApiError, ok
from gateway.api.idempotency import Created, create_once, json_digest
from gateway.webhooks import queries
from gateway.webhooks.states import DeliveryState

__all__ = ["EVENTS", "add_notification_routes"]

_MAX_ID = 2**63 - 1
DEFAULT_PAGE = 200
MAX_PAGE = 500

EVENTS = (
    "document.received",
    "document.delivered",
    "document.failed",
    "profile.status_changed",
    "company.verified",
)


def _admin(request: web.Request) -> Principal:
    principal = require(request)
    return require(request, "webhooks:write" if principal.kind == "company" else "operator")


def _owner(principal: Principal) -> queries.Owner:
    if principal.kind == "company":
        return queries.Owner("company", principal.company_id)
    return queries.Owner("operator", principal.operator_id)


def _hook_json(hook: queries.Webhook) -> dict[str, Any]:
    return {
        "id": str(hook.id),
        "destination_type": hook.destination_type,
        "destination": hook.destination,
        "events": list(hook.events) if hook.events is not None else list(EVENTS),
        "created_at": hook.created_at.isoformat(),
        "updated_at": hook.updated_at.isoformat(),
    }


def _destination(value: Any) -> str:
    parts = urlsplit(str(value or ""))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "validation_error", "destination is an http(s) URL", {"field": "destination"})
    return str(value)


def _events(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(e, str) and e in EVENTS for e in value) or not value:
        raise ApiError(
            400, "validation_error", f"events is a list of: {', '.join(EVENTS)}", {"field": "events"}
        )  # fmt: skip
    return value


async def create_webhook(request: web.Request) -> web.Response:
    principal = _admin(request)
    body = await _json(request)
    kind = str(body.get("destination_type") or ("WEBHOOK" if principal.kind == "company" else "VENDOR_WEBHOOK"))
    if kind not in ("WEBHOOK", "VENDOR_WEBHOOK"):
        raise ApiError(
            400, "validation_error", "destination_type is WEBHOOK or VENDOR_WEBHOOK", {"field": "destination_type"}
        )
    if (kind == "VENDOR_WEBHOOK") != (principal.kind == "operator"):
        message = "companies register WEBHOOK, operators VENDOR_WEBHOOK"
        raise ApiError(400, "validation_error", message, {"field": "destination_type"})
    destination, events = _destination(body.get("destination")), _events(body.get("events"))

    async def create(conn: asyncpg.Connection) -> Created:
        secret = "whsec_" + secrets.token_urlsafe(32)
        hook = await queries.create_webhook(
            cast(asyncpg.Pool, conn),  # one statement: the same on a connection in the key's transaction
            company_id=principal.company_id, operator_id=principal.operator_id, destination_type=kind,
            destination=destination, events=events, secret=secret,
        )  # fmt: skip
        data = _hook_json(hook)
        data["secret"] = secret  # shown once
        return Created(data, secrets=("secret",))

    return await create_once(request.app[RUNTIME].pool, request, principal, json_digest(request, body), create)


async def list_webhooks(request: web.Request) -> web.Response:
    principal = require(request)
    hooks = await queries.list_webhooks(request.app[RUNTIME].pool, _owner(principal))
    return ok([_hook_json(h) for h in hooks])


async def _own_hook(request: web.Request, principal: Principal) -> queries.Webhook:
    hook = await queries.own_webhook(
        request.app[RUNTIME].pool, _owner(principal), _uuid(request.match_info["hook_id"], "webhook")
    )
    if hook is None:
        raise ApiError(404, "not_found", "no such webhook")
    return hook


async def update_webhook(request: web.Request) -> web.Response:
    principal = _admin(request)
    hook = await _own_hook(request, principal)
    body = await _json(request)
    destination = _destination(body["destination"]) if "destination" in body else hook.destination
    events = _events(body["events"]) if "events" in body else hook.events
    updated = await queries.update_webhook(request.app[RUNTIME].pool, hook.id, destination, events)
    return ok(_hook_json(updated))


async def rotate_secret(request: web.Request) -> web.Response:
    principal = _admin(request)
    hook = await _own_hook(request, principal)
    secret = "whsec_" + secrets.token_urlsafe(32)
    updated = await queries.rotate_webhook_secret(request.app[RUNTIME].pool, hook.id, secret)
    data = _hook_json(updated)
    data["secret"] = secret
    return ok(data)


async def delete_webhook(request: web.Request) -> web.Response:
    principal = _admin(request)
    hook = await _own_hook(request, principal)
    await queries.delete_webhook(request.app[RUNTIME].pool, hook.id)
    return ok({"id": str(hook.id), "deleted": True})


def _delivery_json(delivery: queries.Delivery) -> dict[str, Any]:
    pending = delivery.status is DeliveryState.PENDING
    return {
        "id": delivery.id,
        "webhook_id": str(delivery.webhook_id),
        "event_id": str(delivery.event_id),
        "status": str(delivery.status),
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if pending else None,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat(),
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
    }


def _page_query(request: web.Request) -> tuple[int, int | None]:
    """``limit`` and ``cursor`` as the mailbox takes them; the cursor is the last id of a page."""
    raw_limit = request.query.get("limit")
    if raw_limit is not None and not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_PAGE):
        raise ApiError(400, "validation_error", f"limit is an integer from 1 to {MAX_PAGE}", {"field": "limit"})
    cursor = request.query.get("cursor")
    if cursor is not None and not (cursor.isascii() and cursor.isdigit() and int(cursor) <= _MAX_ID):
        raise ApiError(400, "validation_error", "cursor is the next_cursor of a previous page", {"field": "cursor"})
    return (int(raw_limit) if raw_limit is not None else DEFAULT_PAGE), (int(cursor) if cursor is not None else None)


async def list_deliveries(request: web.Request) -> web.Response:
    """Newest first, a page at a time: ``meta.next_cursor`` is the ``cursor`` of the next page
    (null on the last); ``status`` and ``webhook_id`` narrow the list."""
    principal = require(request)
    limit, before = _page_query(request)
    raw_status = request.query.get("status")
    if raw_status is not None and raw_status not in {str(state) for state in DeliveryState}:
        states = ", ".join(DeliveryState)
        raise ApiError(400, "validation_error", f"status is one of: {states}", {"field": "status"})
    raw_hook = request.query.get("webhook_id")
    try:
        webhook_id = uuid.UUID(raw_hook) if raw_hook is not None else None
    except ValueError:
        raise ApiError(400, "validation_error", "webhook_id is a webhook's id", {"field": "webhook_id"}) from None
    page = await queries.list_deliveries(
        request.app[RUNTIME].pool, _owner(principal),
        status=DeliveryState(raw_status) if raw_status is not None else None,
        webhook_id=webhook_id, before=before, limit=limit,
    )  # fmt: skip
    next_cursor = str(page.next_before) if page.next_before is not None else None
    return ok([_delivery_json(d) for d in page.items], meta={"next_cursor": next_cursor})


async def retry_delivery(request: web.Request) -> web.Response:
    principal = _admin(request)
    raw = request.match_info["delivery_id"]
    if not (raw.isascii() and raw.isdigit()) or int(raw) > _MAX_ID:  # beyond bigint: no such row either
        raise ApiError(404, "not_found", "no such delivery")
    runtime = request.app[RUNTIME]
    now = datetime.now(UTC)
    give_up_at = now + timedelta(seconds=runtime.settings.webhook_give_up_after)
    delivery = await queries.retry_delivery(runtime.pool, _owner(principal), int(raw), now, give_up_at)
    if delivery is None:
        raise ApiError(404, "not_found", "no such delivery")
    return ok(_delivery_json(delivery))


def add_notification_routes(app: web.Application) -> None:
    app.router.add_post("/v1/company/notifications", create_webhook)
    app.router.add_get("/v1/company/notifications", list_webhooks)
    app.router.add_patch("/v1/company/notifications/{hook_id}", update_webhook)
    app.router.add_delete("/v1/company/notifications/{hook_id}", delete_webhook)
    app.router.add_post("/v1/company/notifications/{hook_id}/rotate_secret", rotate_secret)
    app.router.add_get("/v1/webhook_deliveries", list_deliveries)
    app.router.add_post("/v1/webhook_deliveries/{delivery_id}/retry", retry_delivery)
