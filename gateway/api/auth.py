"""Authentication and authorisation for the REST API: the HTTP side.

``POST /oauth2/token`` trades an API key for a bearer token (see
:mod:`gateway.security.credentials`); every ``/v1`` request but the public ones then carries the
token, from which the middleware derives the caller (:class:`Principal`). Every endpoint then
asks for scopes and checks the tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from gateway.api.envelope import ApiError
from gateway.directory import queries as directory_queries
from gateway.security.credentials import authenticate_token
from gateway.security.errors import InvalidToken

__all__ = [
    "PRINCIPAL",
    "OAuthError",
    "Principal",
    "auth_middleware",
    "authenticate",
    "require",
    "require_company_access",
]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a company or an operator, with the scopes of its token."""

    kind: str  # "company" or "operator"
    company_id: uuid.UUID | None
    operator_id: uuid.UUID | None
    scopes: frozenset[str]
    key_id: uuid.UUID


class OAuthError(Exception):
    """An RFC 6749 token endpoint error."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


async def authenticate(pool: asyncpg.Pool, authorization: str | None) -> Principal:
    """The caller behind an ``Authorization: Bearer`` header (401 when there is none that holds)."""
    if not authorization:
        raise ApiError(401, "authentication_required", "send Authorization: Bearer <token>")
    kind, _, token = authorization.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise ApiError(401, "authentication_required", "send Authorization: Bearer <token>")
    try:
        grant = await authenticate_token(pool, token.strip())
    except InvalidToken as exc:
        raise ApiError(401, "invalid_token", str(exc)) from None
    return Principal(
        kind="company" if grant.company_id else "operator",
        company_id=grant.company_id,
        operator_id=grant.operator_id,
        scopes=grant.scopes,
        key_id=grant.key_id,
    )


PUBLIC_PATHS = frozenset({"/v1/ping", "/v1/ready", "/v1/openapi.json", "/v1/docs"})
PUBLIC_PREFIXES = ("/v1/docs/",)  # the API viewer's files
PRINCIPAL = web.RequestKey("principal", Principal)


def auth_middleware(pool_of: Any) -> Any:
    """Authenticate every ``/v1`` request but the public ones; ``request[PRINCIPAL]`` then
    holds the caller."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        routed = getattr(request.match_info, "http_exception", None) is None
        public = request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES)
        if routed and request.path.startswith("/v1/") and not public:
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
    if principal.kind == "operator" and principal.operator_id is not None:
        if await directory_queries.company_of_operator(pool, company_id, principal.operator_id):
            return
    raise ApiError(404, "not_found", "no such company")
