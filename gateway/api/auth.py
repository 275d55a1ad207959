"""Authentication and authorisation for the REST API.

Companies and operators hold API keys (random secrets, stored only as SHA-256 hashes; a hash
is enough for 256-bit random secrets). ``POST /oauth2/token`` trades a key for a short-lived
bearer token (also stored only as a hash, so revoking the key ends its tokens at once). Every
endpoint then asks for scopes and checks the tenant.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from gateway.api.envelope import ApiError

__all__ = [
    "COMPANY_SCOPES",
    "OPERATOR_SCOPES",
    "Principal",
    "auth_middleware",
    "authenticate",
    "create_api_key",
    "create_operator",
    "issue_token",
    "key_status",
    "require",
    "require_company_access",
]

COMPANY_SCOPES = (
    "company",
    "documents:send",
    "documents:receive",
    "profiles:write",
    "webhooks:write",
    "keys:write",
)
OPERATOR_SCOPES = ("operator",)
TOKEN_TTL = timedelta(hours=1)
EXPIRING_SOON = timedelta(days=14)


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_secret(kind: str) -> str:
    return f"{kind}_{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a company or an operator, with the scopes of its token."""

    kind: str  # "company" or "operator"
    company_id: uuid.UUID | None
    operator_id: uuid.UUID | None
    scopes: frozenset[str]
    key_id: uuid.UUID


async def create_api_key(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    company_id: uuid.UUID | None = None,
    operator_id: uuid.UUID | None = None,
    label: str = "",
    scopes: tuple[str, ...] | list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[uuid.UUID, str]:
    """A new key; the plain secret is returned once and never stored."""
    default = COMPANY_SCOPES if company_id else OPERATOR_SCOPES
    secret = new_secret("gwk")
    key_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO api_keys (id, company_id, operator_id, label, scopes, key_hash, prefix, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        key_id,
        company_id,
        operator_id,
        label,
        list(scopes or default),
        _hash(secret),
        secret[:10],
        expires_at,
    )
    return key_id, secret


async def create_operator(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> tuple[uuid.UUID, str]:
    """A new operator and its first (vendor) key; the secret is returned once."""
    operator_id = uuid.uuid4()
    await conn.execute("INSERT INTO operators (id, name) VALUES ($1, $2)", operator_id, name)
    _, secret = await create_api_key(conn, operator_id=operator_id, label="initial")
    return operator_id, secret


def key_status(row: Any, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    if row["expires_at"] is not None and row["expires_at"] <= now + EXPIRING_SOON:
        return "expiring_soon"
    return "active"


class OAuthError(Exception):
    """An RFC 6749 token endpoint error."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


async def issue_token(
    pool: asyncpg.Pool, client_id: str, client_secret: str, scope: str | None, client_ip: str | None
) -> dict[str, Any]:
    """Client-credentials grant: the answer in the OAuth2 token response shape."""
    row = await pool.fetchrow(
        "SELECT id, company_id, operator_id, scopes, expires_at, revoked_at FROM api_keys WHERE key_hash = $1",
        _hash(client_secret),
    )
    owner = str(row["company_id"] or row["operator_id"]) if row else None
    if row is None or owner != client_id.strip():
        raise OAuthError("invalid_client", "unknown client id or secret", 401)
    status = key_status(row)
    if status in ("revoked", "expired"):
        raise OAuthError("invalid_client", f"the API key is {status}", 401)
    granted = list(row["scopes"])
    if scope:
        wanted = scope.split()
        missing = [s for s in wanted if s not in granted]
        if missing:
            raise OAuthError("invalid_scope", f"the key does not carry: {' '.join(missing)}")
        granted = wanted
    token = new_secret("gwt")
    expires = datetime.now(UTC) + TOKEN_TTL
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO access_tokens (token_hash, api_key_id, scopes, expires_at) VALUES ($1, $2, $3, $4)",
            _hash(token),
            row["id"],
            granted,
            expires,
        )
        await conn.execute(
            "UPDATE api_keys SET last_used_at = now(), last_used_ip = $2 WHERE id = $1", row["id"], client_ip
        )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(TOKEN_TTL.total_seconds()),
        "scope": " ".join(granted),
    }


async def authenticate(pool: asyncpg.Pool, authorization: str | None) -> Principal:
    if not authorization:
        raise ApiError(401, "authentication_required", "send Authorization: Bearer <token>")
    kind, _, token = authorization.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise ApiError(401, "authentication_required", "send Authorization: Bearer <token>")
    row = await pool.fetchrow(
        """SELECT t.scopes, t.expires_at, k.id AS key_id, k.company_id, k.operator_id, k.revoked_at,
                  k.expires_at AS key_expires_at
           FROM access_tokens t JOIN api_keys k ON k.id = t.api_key_id WHERE t.token_hash = $1""",
        _hash(token.strip()),
    )
    now = datetime.now(UTC)
    if row is None:
        raise ApiError(401, "invalid_token", "the token is not known")
    if row["expires_at"] <= now:
        raise ApiError(401, "invalid_token", "the token has expired; ask /oauth2/token for a new one")
    if row["revoked_at"] is not None:
        raise ApiError(401, "invalid_token", "the API key behind this token was revoked")
    if row["key_expires_at"] is not None and row["key_expires_at"] <= now:
        raise ApiError(401, "invalid_token", "the API key behind this token has expired")
    return Principal(
        kind="company" if row["company_id"] else "operator",
        company_id=row["company_id"],
        operator_id=row["operator_id"],
        scopes=frozenset(row["scopes"]),
        key_id=row["key_id"],
    )


PUBLIC_PATHS = frozenset({"/v1/ping", "/v1/ready", "/v1/openapi.json"})
PRINCIPAL = web.RequestKey("principal", Principal)


def auth_middleware(pool_of: Any) -> Any:
    """Authenticate every ``/v1`` request but the public ones; ``request[PRINCIPAL]`` then
    holds the caller."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        routed = getattr(request.match_info, "http_exception", None) is None
        if routed and request.path.startswith("/v1/") and request.path not in PUBLIC_PATHS:
            request[PRINCIPAL] = await authenticate(pool_of(request), request.headers.get("Authorization"))
        return await handler(request)  # type: ignore[no-any-return]

    return middleware


def require(request: web.Request, *scopes: str) -> Principal:
    """The caller, who must hold every scope in ``scopes``."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        raise ApiError(401, "authentication_required", "send Authorization: Bearer <token>")
    missing = [s for s in scopes if s not in principal.scopes]
    if missing:
        raise ApiError(403, "insufficient_scope", f"this needs the scope {', '.join(missing)}")
    return principal


async def require_company_access(pool: asyncpg.Pool, principal: Principal, company_id: uuid.UUID) -> None:
    """A company reaches only itself; an operator only the companies linked to it. Anything else
    is answered as not found, so ids of other tenants cannot be probed."""
    if principal.kind == "company" and principal.company_id == company_id:
        return
    if principal.kind == "operator":
        linked = await pool.fetchval(
            "SELECT true FROM companies WHERE id = $1 AND operator_id = $2", company_id, principal.operator_id
        )
        if linked:
            return
    raise ApiError(404, "not_found", "no such company")
