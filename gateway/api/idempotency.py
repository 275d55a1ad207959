"""Requests that create something, answered once: the ``Idempotency-Key`` header.

A key is the caller's (unique per company, or per operator) for :data:`KEY_LIFETIME` seconds.
It is claimed in the transaction that creates what the request asks for, so a crash before the
commit leaves neither the key nor what it created, and a concurrent retry waits on the key's
unique index for the first request to end: it then answers as the first did, or, if the first
rolled back, runs itself. A retry gets the first answer's status and body again, with
``Idempotent-Replayed: true``; a key reused for another request (another SHA-256 of method,
path and body) is refused with 409 ``idempotency_key_reused``. Only successful answers are
kept: a refused request may be retried with its key. A secret shown once (an API key, a
webhook secret) is not kept: a replay has ``null`` in its place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from gateway.api.auth import Principal
from gateway.api.envelope import ApiError, data_body, ok
from gateway.security import queries
from gateway.security.queries import IdempotencyOwner

__all__ = ["HEADER", "KEY_LIFETIME", "REPLAYED", "Created", "create_once", "json_digest", "request_digest"]

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY_LIFETIME = 24 * 3600.0  # seconds; an older key is a new one
MAX_KEY_LENGTH = 255

log = structlog.get_logger("gateway.api.idempotency")


@dataclass(frozen=True)
class Created:
    """What a creating request answers: its data and status, and the fields of ``data`` that
    are shown once (never kept for a replay)."""

    data: Any
    status: int = 201
    secrets: tuple[str, ...] = ()


# Creates what the request asks for in the given connection's transaction.
Create = Callable[[asyncpg.Connection], Awaitable[Created]]


def request_digest(request: web.Request, *parts: bytes) -> bytes:
    """SHA-256 of the method, the path and the request's parts (each length-prefixed, so no two
    different requests hash alike)."""
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), *parts):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def json_digest(request: web.Request, body: Any) -> bytes:
    """The digest of a JSON request by its content (the same object in another key order or
    spacing is the same request)."""
    return request_digest(request, json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _owner(principal: Principal) -> IdempotencyOwner:
    if principal.company_id is not None:
        return IdempotencyOwner(company_id=principal.company_id)
    return IdempotencyOwner(operator_id=principal.operator_id)


def _key(request: web.Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        message = f"{HEADER} is 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        raise ApiError(400, "validation_error", message, {"field": HEADER})
    return key


def _replay(kept: queries.KeptAnswer, digest: bytes, key: str) -> web.Response:
    if kept.request_sha256 is not None and kept.request_sha256 != digest:
        raise ApiError(409, "idempotency_key_reused", f"the {HEADER} was used for another request", {"field": HEADER})
    log.info("idempotent_replay", key=key, status=kept.status)
    return web.Response(
        body=kept.response.encode(), status=kept.status, content_type="application/json", headers={REPLAYED: "true"}
    )


def _kept_body(created: Created, body: dict[str, Any]) -> str:
    if not created.secrets or not isinstance(created.data, dict):
        return json.dumps(body)
    data = {name: None if name in created.secrets else value for name, value in created.data.items()}
    return json.dumps({**body, "data": data})


async def create_once(
    pool: asyncpg.Pool, request: web.Request, principal: Principal, digest: bytes, create: Create
) -> web.Response:
    """Run ``create`` in a transaction, once per Idempotency-Key: without a key it just runs."""
    key = _key(request)
    if key is None:
        async with pool.acquire() as conn, conn.transaction():
            created = await create(conn)
        return ok(created.data, created.status)
    owner = _owner(principal)
    kept = await queries.kept_answer(pool, owner, key, KEY_LIFETIME)
    if kept is not None:
        return _replay(kept, digest, key)
    await queries.purge_idempotency_keys(pool, KEY_LIFETIME)
    async with pool.acquire() as conn:
        async with conn.transaction():
            if await queries.claim_idempotency_key(conn, owner, key, digest, KEY_LIFETIME):
                created = await create(conn)
                body = data_body(created.data, created.status)
                await queries.keep_idempotent_answer(conn, owner, key, created.status, _kept_body(created, body))
                claimed = True
            else:
                claimed = False
        if claimed:
            return web.json_response(body, status=created.status)
        kept = await queries.kept_answer(conn, owner, key, KEY_LIFETIME)
    if kept is None:  # taken and expired at the same moment: rare enough to ask for a retry
        raise ApiError(409, "conflict", f"the {HEADER} is in use; retry the request")
    return _replay(kept, digest, key)
