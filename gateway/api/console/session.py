"""Signing in to the console, the session cookie, and the forgery check on every form.

A browser signs in with the credentials of the token endpoint (a company's or an operator's id
and API key). It then holds a random session secret in a cookie that scripts cannot read
(HttpOnly), that other sites never cause to be sent (SameSite=Strict) and that travels only over
HTTPS unless the console is opened on loopback (Secure). Only the secret's hash is stored
(``console_sessions``); the session ends after eight hours, at sign-out, or with its key. Every
form carries a token derived from the session secret, and every POST must bring it back.

The caller is the same :class:`~gateway.api.auth.Principal` the API knows, with the same
scopes; :class:`ConsoleUser` adds the companies it may see (a company: itself; an operator:
the companies linked to it), and every query of the console is limited to those.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import asyncpg
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.api.accounts import RUNTIME
from gateway.api.auth import Principal
from gateway.api.console.pages import ConsoleError, render
from gateway.directory import queries as directory_queries
from gateway.security import queries as security_queries
from gateway.security.credentials import (
    CONSOLE_SESSION_TTL,
    console_session,
    csrf_token,
    hash_secret,
    open_console_session,
)
from gateway.security.errors import InvalidClient, InvalidToken

__all__ = ["USER", "ConsoleUser", "add_session_routes", "pool_of", "see_other", "session_middleware"]

COOKIE = "console_session"
SIGN_IN_COOKIE = "console_sign_in"  # the sign-in form's own token, before there is a session
PUBLIC = ("/console/sign-in", "/console/static/")

log = structlog.get_logger("gateway.console")


@dataclass(frozen=True)
class ConsoleUser:
    """Who is signed in, what they may do (the API's scopes) and whose data they see."""

    principal: Principal
    name: str
    companies: tuple[uuid.UUID, ...]
    csrf: str
    session_hash: bytes

    @property
    def is_operator(self) -> bool:
        return self.principal.kind == "operator"

    @property
    def company_ids(self) -> list[uuid.UUID]:
        return list(self.companies)

    def may(self, company_scope: str) -> bool:
        """Whether the user may do what needs ``company_scope`` of a company (an operator acts
        with its ``operator`` scope for the companies it manages)."""
        needed = "operator" if self.is_operator else company_scope
        return needed in self.principal.scopes

    def need(self, company_scope: str) -> None:
        if not self.may(company_scope):
            needed = "operator" if self.is_operator else company_scope
            raise ConsoleError(403, f"this needs the scope {needed}")

    def need_operator(self) -> None:
        if not self.is_operator or "operator" not in self.principal.scopes:
            raise ConsoleError(403, "this page is for operators")

    def sees(self, company_id: uuid.UUID | None) -> bool:
        return company_id is not None and company_id in self.companies


USER = web.RequestKey("console_user", ConsoleUser)


def pool_of(request: web.Request) -> asyncpg.Pool:
    return request.config_dict[RUNTIME].pool


def _loopback(request: web.Request) -> bool:
    host = (request.url.host or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/console", httponly=True, samesite="Strict", secure=not _loopback(request)
    )


async def _user(request: web.Request, secret: str) -> ConsoleUser:
    """The signed-in user behind a session secret; :class:`InvalidToken` when it has ended."""
    pool = pool_of(request)
    grant = await console_session(pool, secret)
    principal = Principal(
        kind="company" if grant.company_id else "operator",
        company_id=grant.company_id,
        operator_id=grant.operator_id,
        scopes=grant.scopes,
        key_id=grant.key_id,
    )
    if principal.kind == "company":
        assert grant.company_id is not None
        company = await directory_queries.company(pool, grant.company_id)
        name = company.name if company is not None else str(grant.company_id)
        companies: tuple[uuid.UUID, ...] = (grant.company_id,)
    else:
        assert grant.operator_id is not None
        name = await security_queries.operator_name(pool, grant.operator_id) or "operator"
        companies = tuple(await directory_queries.operator_companies(pool, grant.operator_id))
    return ConsoleUser(principal, name, companies, csrf_token(secret), hash_secret(secret))


def _same_origin(request: web.Request) -> bool:
    """A POST from another site is refused however it got its token (the Origin header, when a
    browser sends one, names the page the form was on)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


async def _form_token(request: web.Request) -> str:
    header = request.headers.get("X-CSRF-Token")
    if header is not None:
        return header
    form = await request.post()
    return str(form.get("csrf_token") or "")


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but sign-in needs a live session; every POST its form token."""
    if request.path.startswith(PUBLIC):
        return await handler(request)
    secret = request.cookies.get(COOKIE)
    user = None
    if secret:
        try:
            user = await _user(request, secret)
        except InvalidToken:
            user = None
    if user is None:
        if request.path.startswith("/console/api/") or request.method != "GET":
            raise ConsoleError(401, "sign in first")
        raise web.HTTPSeeOther(f"/console/sign-in?next={quote(request.path_qs, safe='')}")
    request[USER] = user
    if request.method not in ("GET", "HEAD"):
        token = await _form_token(request)
        if not _same_origin(request) or not hmac.compare_digest(token.encode(), user.csrf.encode()):
            log.warning("console_forgery_refused", path=request.path, origin=request.headers.get("Origin"))
            raise ConsoleError(403, "the form's security token is missing or wrong: reload the page and try again")
    return await handler(request)


def see_other(location: str) -> web.Response:
    """The answer to a form that worked: go to ``location`` (a GET), so a reload does not post again."""
    return web.Response(status=303, headers={"Location": location})


def _next(value: str | None) -> str:
    """Where to go after signing in: a console page only (never another site)."""
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


async def sign_in_page(request: web.Request) -> web.Response:
    token = request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        title="Sign in",
        csrf=token,
        next=_next(request.query.get("next")),
        error=None,
        client_id="",
    )
    _set_cookie(request, response, SIGN_IN_COOKIE, token, 3600)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    given = str(form.get("csrf_token") or "")
    if not expected or not _same_origin(request) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ConsoleError(403, "the sign-in form's security token is missing or wrong: reload the page")
    client_id, secret = str(form.get("client_id") or "").strip(), str(form.get("client_secret") or "").strip()
    target = _next(str(form.get("next") or ""))
    try:
        session_secret, _ = await open_console_session(pool_of(request), client_id, secret, request.remote)
    except InvalidClient as exc:
        log.info("console_sign_in_refused", client_id=client_id[:40], reason=str(exc))
        response = render(
            request,
            "sign_in.html",
            http_status=401,
            title="Sign in",
            csrf=expected,
            next=target,
            error="Unknown client id or secret.",
            client_id=client_id,
        )
        return response
    log.info("console_signed_in", client_id=client_id)
    response = see_other(target)
    _set_cookie(request, response, COOKIE, session_secret, int(CONSOLE_SESSION_TTL.total_seconds()))
    response.del_cookie(SIGN_IN_COOKIE, path="/console")
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    user = request[USER]
    await security_queries.end_console_session(pool_of(request), user.session_hash)
    log.info("console_signed_out", name=user.name)
    response = see_other("/console/sign-in")
    response.del_cookie(COOKIE, path="/console")
    return response


def add_session_routes(app: web.Application) -> None:
    app.router.add_get("/sign-in", sign_in_page)
    app.router.add_post("/sign-in", sign_in)
    app.router.add_post("/sign-out", sign_out)
