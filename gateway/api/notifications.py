"""Webhook registrations (``/v1/company/notifications``) and their deliveries."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway.api.accounts import RUNTIME, _json, _uuid
from gateway.api.auth import Principal, require
from gateway.api.envelope import ApiError, ok
from gateway.webhooks.delivery import GIVE_UP_AFTER

__all__ = ["EVENTS", "add_notification_routes"]

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


def _owner(principal: Principal) -> tuple[str, uuid.UUID | None]:
    if principal.kind == "company":
        return "company_id = $1", principal.company_id
    return "operator_id = $1", principal.operator_id


def _hook_json(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "destination_type": row["destination_type"],
        "destination": row["destination"],
        "events": list(row["events"]) if row["events"] is not None else list(EVENTS),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
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
    secret = "whsec_" + secrets.token_urlsafe(32)
    row = await request.app[RUNTIME].pool.fetchrow(
        "INSERT INTO webhooks (id, company_id, operator_id, destination_type, destination, events, secret) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        uuid.uuid4(), principal.company_id, principal.operator_id, kind,
        _destination(body.get("destination")), _events(body.get("events")), secret,
    )  # fmt: skip
    data = _hook_json(row)
    data["secret"] = secret  # shown once
    return ok(data, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    principal = require(request)
    clause, owner = _owner(principal)
    rows = await request.app[RUNTIME].pool.fetch(f"SELECT * FROM webhooks WHERE {clause} ORDER BY created_at", owner)  # noqa: S608
    return ok([_hook_json(r) for r in rows])


async def _own_hook(request: web.Request, principal: Principal) -> Any:
    clause, owner = _owner(principal)
    row = await request.app[RUNTIME].pool.fetchrow(
        f"SELECT * FROM webhooks WHERE id = $2 AND {clause}",  # noqa: S608
        owner,
        _uuid(request.match_info["hook_id"], "webhook"),
    )
    if row is None:
        raise ApiError(404, "not_found", "no such webhook")
    return row


async def update_webhook(request: web.Request) -> web.Response:
    principal = _admin(request)
    row = await _own_hook(request, principal)
    body = await _json(request)
    destination = _destination(body["destination"]) if "destination" in body else row["destination"]
    events = _events(body["events"]) if "events" in body else row["events"]
    updated = await request.app[RUNTIME].pool.fetchrow(
        "UPDATE webhooks SET destination = $2, events = $3, updated_at = now() WHERE id = $1 RETURNING *",
        row["id"], destination, events,
    )  # fmt: skip
    return ok(_hook_json(updated))


async def rotate_secret(request: web.Request) -> web.Response:
    principal = _admin(request)
    row = await _own_hook(request, principal)
    secret = "whsec_" + secrets.token_urlsafe(32)
    updated = await request.app[RUNTIME].pool.fetchrow(
        "UPDATE webhooks SET secret = $2, updated_at = now() WHERE id = $1 RETURNING *", row["id"], secret
    )
    data = _hook_json(updated)
    data["secret"] = secret
    return ok(data)


async def delete_webhook(request: web.Request) -> web.Response:
    principal = _admin(request)
    row = await _own_hook(request, principal)
    await request.app[RUNTIME].pool.execute("DELETE FROM webhooks WHERE id = $1", row["id"])
    return ok({"id": str(row["id"]), "deleted": True})


def _delivery_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "webhook_id": str(row["webhook_id"]),
        "event_id": str(row["event_id"]),
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"].isoformat() if row["status"] == "pending" else None,
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "created_at": row["created_at"].isoformat(),
        "delivered_at": row["delivered_at"].isoformat() if row["delivered_at"] else None,
    }


async def list_deliveries(request: web.Request) -> web.Response:
    principal = require(request)
    clause, owner = _owner(principal)
    status = request.query.get("status")
    rows = await request.app[RUNTIME].pool.fetch(
        f"""SELECT d.* FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
            WHERE w.{clause} AND ($2::text IS NULL OR d.status = $2) ORDER BY d.id DESC LIMIT 200""",  # noqa: S608
        owner,
        status,
    )
    return ok([_delivery_json(r) for r in rows])


async def retry_delivery(request: web.Request) -> web.Response:
    principal = _admin(request)
    clause, owner = _owner(principal)
    raw = request.match_info["delivery_id"]
    if not raw.isdigit():
        raise ApiError(404, "not_found", "no such delivery")
    now = datetime.now(UTC)
    row = await request.app[RUNTIME].pool.fetchrow(
        f"""UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = $3, give_up_at = $4,
                locked_until = NULL
            FROM webhooks w WHERE d.id = $2 AND w.id = d.webhook_id AND w.{clause} RETURNING d.*""",  # noqa: S608
        owner, int(raw), now, now + GIVE_UP_AFTER,
    )  # fmt: skip
    if row is None:
        raise ApiError(404, "not_found", "no such delivery")
    return ok(_delivery_json(row))


def add_notification_routes(app: web.Application) -> None:
    app.router.add_post("/v1/company/notifications", create_webhook)
    app.router.add_get("/v1/company/notifications", list_webhooks)
    app.router.add_patch("/v1/company/notifications/{hook_id}", update_webhook)
    app.router.add_delete("/v1/company/notifications/{hook_id}", delete_webhook)
    app.router.add_post("/v1/company/notifications/{hook_id}/rotate_secret", rotate_secret)
    app.router.add_get("/v1/webhook_deliveries", list_deliveries)
    app.router.add_post("/v1/webhook_deliveries/{delivery_id}/retry", retry_delivery)
