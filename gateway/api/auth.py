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
from gateway.security.credentials import authenticate_and_take, authenticate_token
from gateway.security.errors import InvalidToken
from gateway.security.limits import Allowance, RateLimit
from gateway.security.queries import TokenGrant

__all__ = [
    "ALLOWANCE",
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
    principal, _ = await _authenticate(pool, authorization, None)
    return principal


async def _authenticate(
    pool: asyncpg.Pool, authorization: str | None, rate: RateLimit | None
) -> tuple[Principal, Allowance | None]:
    """:func:`authenticate`, and with ``rate`` the caller's rate token taken in the same
    statement (None: not taken)."""
    if not authorization:
        raise ApiError(401, "authentication_required", "send Authorization: Bearer <token>")
    kind, _, token = authorization.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise ApiError(401, "authentication_required", "send Authorization: Bearer <token>")
    allowance = None
    try:
        if rate is None:
            grant = await authenticate_token(pool, token.strip())
        else:
            grant, allowance = await authenticate_and_take(pool, token.strip(), rate)
    except InvalidToken as exc:
        raise ApiError(401, "invalid_token", str(exc)) from None
    return _principal(grant), allowance


def _principal(grant: TokenGrant) -> Principal:
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
# The caller's rate token, when authentication took it (see auth_middleware's ``rate``).
ALLOWANCE = web.RequestKey("allowance", Allowance)


def auth_middleware(pool_of: Any, rate: RateLimit | None = None) -> Any:
    """Authenticate every ``/v1`` request but the public ones; ``request[PRINCIPAL]`` then
    holds the caller. With ``rate`` (the API's rate limit), the caller's rate token is taken by
    the statement that reads its token (``request[ALLOWANCE]``), for the rate limiter to answer
    with: one round trip instead of two."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        routed = getattr(request.match_info, "http_exception", None) is None
        public = request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES)
        if routed and request.path.startswith("/v1/") and not public:
            principal, allowance = await _authenticate(pool_of(request), request.headers.get("Authorization"), rate)
            request[PRINCIPAL] = principal
            if allowance is not None:
                request[ALLOWANCE] = allowance
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
