"""Token endpoint, companies (operators), API keys, and receiving profiles."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.api.auth import OAuthError, Principal, require, require_company_access
from gateway.api.envelope import ApiError, ok
from gateway.api.idempotency import Created, create_once, json_digest
from gateway.directory import queries as directory_queries
from gateway.directory import registration
from gateway.directory.companies import SWITCHES, VALIDATION_POLICIES, policy_changes
from gateway.directory.errors import Conflict, Invalid, NotFound
from gateway.directory.profiles import DEFAULT_VERSION, profile_view
from gateway.directory.queries import Company
from gateway.runtime import Runtime
from gateway.security import queries as security_queries
from gateway.security.credentials import create_api_key, issue_token, key_status
from gateway.security.errors import InvalidClient, InvalidScope
from gateway.security.queries import ApiKey

__all__ = ["RUNTIME", "add_account_routes"]

RUNTIME = web.AppKey("runtime", Runtime)


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.app[RUNTIME].pool


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "validation_error", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "validation_error", "the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, *, required: bool = True) -> Any:
    value = body.get(name)
    if required and (value is None or (isinstance(value, str) and not value.strip())):
        raise ApiError(400, "validation_error", f"{name} is required", {"field": name})
    return value


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", f"no such {what}") from None


def _parse_time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "validation_error", f"{field} is not an ISO 8601 time", {"field": field}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _directory_error(exc: NotFound | Conflict | Invalid) -> ApiError:
    """The API answer to a directory refusal."""
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, Conflict):
        return ApiError(409, "conflict", str(exc))
    return ApiError(400, "validation_error", str(exc), {"field": exc.field})


# -- token -----------------------------------------------------------------------------------------


async def token(request: web.Request) -> web.Response:
    """OAuth2 client credentials (RFC 6749 §4.4); errors in the RFC's shape."""
    try:
        try:
            form = await request.post()
        except (ValueError, AssertionError, HttpProcessingError):
            raise OAuthError("invalid_request", "send a form-encoded body") from None
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
        client_id, secret = str(form.get("client_id") or ""), str(form.get("client_secret") or "")
        if not client_id or not secret:
            raise OAuthError("invalid_request", "client_id and client_secret are required")
        try:
            issued = await issue_token(
                _pool(request), client_id, secret, str(form.get("scope") or "") or None, request.remote
            )
        except InvalidClient as exc:
            raise OAuthError("invalid_client", str(exc), 401) from None
        except InvalidScope as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
    except OAuthError as exc:
        return web.json_response(
            {"error": exc.error, "error_description": exc.description},
            status=exc.status,
            headers={"Cache-Control": "no-store"},
        )
    answer = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": " ".join(issued.scopes),
    }
    return web.json_response(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# -- companies -------------------------------------------------------------------------------------


def _company_json(company: Company) -> dict[str, Any]:
    return {
        "id": str(company.id),
        "name": company.name,
        "country": company.country,
        "business_id": company.business_id,
        "verified": company.verified,
        "outbound_validation": company.outbound_validation,
        "inbound_validation": company.inbound_validation,
        "duplicate_check": company.duplicate_check,
        "positive_mls": company.positive_mls,
        "created_at": company.created_at.isoformat(),
    }


async def update_company(request: web.Request) -> web.Response:
    """Change a company's validation policies, ``duplicate_check`` and ``positive_mls`` (the
    operator, or the company itself)."""
    principal = require(request)
    company_id = _uuid(request.match_info["company_id"], "company")
    await require_company_access(_pool(request), principal, company_id)
    body = await _json(request)
    try:
        changes = policy_changes(body)
    except Invalid as exc:
        raise _directory_error(exc) from None
    outbound, inbound, duplicates = (changes.get(name) for name in (*VALIDATION_POLICIES, *SWITCHES))
    company = await directory_queries.set_validation_policies(
        _pool(request),
        company_id,
        outbound=None if outbound is None else str(outbound),
        inbound=None if inbound is None else str(inbound),
        duplicate_check=None if duplicates is None else bool(duplicates),
        positive_mls=None if changes.get("positive_mls") is None else str(changes["positive_mls"]),
    )
    if company is None:
        raise ApiError(404, "not_found", "no such company")
    return ok(_company_json(company))


async def create_company(request: web.Request) -> web.Response:
    principal = require(request, "operator")
    body = await _json(request)
    name = str(_field(body, "name")).strip()
    country = str(_field(body, "country")).strip().upper()
    business_id = str(_field(body, "business_id")).strip()
    if len(country) != 2 or not country.isalpha():
        raise ApiError(400, "validation_error", "country is an ISO 3166 alpha-2 code", {"field": "country"})

    async def create(conn: asyncpg.Connection) -> Created:
        try:
            company = await directory_queries.create_company(
                conn, name=name, country=country, business_id=business_id, operator_id=principal.operator_id
            )
        except Conflict as exc:
            raise _directory_error(exc) from None
        _, secret = await create_api_key(conn, company_id=company.id, label="initial")
        data = _company_json(company)
        data["api_key"] = secret  # shown once
        return Created(data, secrets=("api_key",))

    return await create_once(_pool(request), request, principal, json_digest(request, body), create)


async def list_companies(request: web.Request) -> web.Response:
    principal = require(request)
    if principal.kind == "operator":
        companies = await directory_queries.companies_of_operator(_pool(request), principal.operator_id)
    else:
        own = await directory_queries.company(_pool(request), principal.company_id)
        companies = [] if own is None else [own]
    return ok([_company_json(c) for c in companies])


async def get_company(request: web.Request) -> web.Response:
    principal = require(request)
    company_id = _uuid(request.match_info["company_id"], "company")
    await require_company_access(_pool(request), principal, company_id)
    company = await directory_queries.company(_pool(request), company_id)
    if company is None:
        raise ApiError(404, "not_found", "no such company")
    return ok(_company_json(company))


async def verify_company(request: web.Request) -> web.Response:
    principal = require(request, "operator")
    company_id = _uuid(request.match_info["company_id"], "company")
    await require_company_access(_pool(request), principal, company_id)
    company = await directory_queries.verify_company(_pool(request), company_id)
    if company is None:
        raise ApiError(404, "not_found", "no such company")
    await registration.publish_pending(_pool(request), request.app[RUNTIME].registrar, company_id)
    return ok(_company_json(company))


# -- API keys --------------------------------------------------------------------------------------


def _key_json(key: ApiKey) -> dict[str, Any]:
    def stamp(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {
        "id": str(key.id),
        "label": key.label,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "created_at": stamp(key.created_at),
        "expires_at": stamp(key.expires_at),
        "revoked_at": stamp(key.revoked_at),
        "last_used_at": stamp(key.last_used_at),
        "last_used_ip": key.last_used_ip,
        "status": key_status(key).value,
    }


def require_key_admin(request: web.Request) -> Principal:
    """Companies manage their keys with ``keys:write``; operators with ``operator``."""
    principal = require(request)
    return require(request, "keys:write" if principal.kind == "company" else "operator")


async def list_keys(request: web.Request) -> web.Response:
    principal = require(request)
    keys = await security_queries.api_keys_of(
        _pool(request), company_id=principal.company_id, operator_id=principal.operator_id
    )
    return ok([_key_json(k) for k in keys])


async def _new_key_answer(conn: asyncpg.Connection, key_id: uuid.UUID, secret: str) -> Created:
    key = await security_queries.api_key(conn, key_id)
    assert key is not None
    data = _key_json(key)
    data["api_key"] = secret  # shown once
    return Created(data, secrets=("api_key",))


async def create_key(request: web.Request) -> web.Response:
    principal = require_key_admin(request)
    body = await _json(request) if request.can_read_body else {}
    allowed = set(principal.scopes)
    scopes = body.get("scopes") or sorted(allowed)
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes) or not set(scopes) <= allowed:
        raise ApiError(400, "validation_error", "scopes must be a subset of your own", {"field": "scopes"})
    expires_at = _parse_time(body.get("expires_at"), "expires_at")

    async def create(conn: asyncpg.Connection) -> Created:
        key_id, secret = await create_api_key(
            conn, company_id=principal.company_id, operator_id=principal.operator_id,
            label=str(body.get("label") or ""), scopes=scopes, expires_at=expires_at,
        )  # fmt: skip
        return await _new_key_answer(conn, key_id, secret)

    return await create_once(_pool(request), request, principal, json_digest(request, body), create)


async def _own_key(request: web.Request, principal: Principal) -> ApiKey:
    key_id = _uuid(request.match_info["key_id"], "API key")
    key = await security_queries.owned_api_key(
        _pool(request), key_id, company_id=principal.company_id, operator_id=principal.operator_id
    )
    if key is None:
        raise ApiError(404, "not_found", "no such API key")
    return key


async def update_key(request: web.Request) -> web.Response:
    principal = require_key_admin(request)
    key = await _own_key(request, principal)
    body = await _json(request)
    label = body.get("label", key.label)
    if not isinstance(label, str):
        raise ApiError(400, "validation_error", "label is a string", {"field": "label"})
    expires = _parse_time(body["expires_at"], "expires_at") if "expires_at" in body else key.expires_at
    return ok(_key_json(await security_queries.update_api_key(_pool(request), key.id, label, expires)))


async def rotate_key(request: web.Request) -> web.Response:
    principal = require_key_admin(request)
    key = await _own_key(request, principal)
    body = await _json(request) if request.can_read_body else {}
    grace = body.get("grace_seconds", 0)
    if not isinstance(grace, int) or not 0 <= grace <= 30 * 86400:
        raise ApiError(400, "validation_error", "grace_seconds is 0..2592000", {"field": "grace_seconds"})

    async def rotate(conn: asyncpg.Connection) -> Created:
        key_id, secret = await create_api_key(
            conn, company_id=key.company_id, operator_id=key.operator_id, label=key.label, scopes=key.scopes,
            expires_at=key.expires_at,
        )  # fmt: skip
        ends = datetime.now(UTC) + timedelta(seconds=grace) if grace else None
        await security_queries.end_api_key(conn, key.id, ends)
        return await _new_key_answer(conn, key_id, secret)

    return await create_once(_pool(request), request, principal, json_digest(request, body), rotate)


async def revoke_key(request: web.Request) -> web.Response:
    principal = require_key_admin(request)
    key = await _own_key(request, principal)
    return ok(_key_json(await security_queries.revoke_api_key(_pool(request), key.id)))


# -- receiving profiles ----------------------------------------------------------------------------


async def register_profiles(request: web.Request) -> web.Response:
    principal = require(request, "profiles:write")
    assert principal.company_id is not None
    body = await _json(request)
    if str(body.get("network", "PEPPOL")).upper() != "PEPPOL":
        raise ApiError(400, "validation_error", "network must be PEPPOL", {"field": "network"})
    profiles = body.get("profiles")
    if not isinstance(profiles, list) or not profiles or not all(isinstance(p, str) for p in profiles):
        raise ApiError(400, "validation_error", "profiles is a non-empty list of names", {"field": "profiles"})
    version = str(body.get("profile_version") or DEFAULT_VERSION)
    given = str(body["participant_id"]) if body.get("participant_id") else None
    company_id = principal.company_id

    async def create(conn: asyncpg.Connection) -> Created:
        try:
            registered = await registration.register_profiles(
                conn, request.app[RUNTIME].registrar, company_id, profiles, version, given
            )
        except (NotFound, Conflict, Invalid) as exc:
            raise _directory_error(exc) from None
        return Created([profile_view(p) for p in registered])

    return await create_once(_pool(request), request, principal, json_digest(request, body), create)


async def list_profiles(request: web.Request) -> web.Response:
    principal = require(request, "company")
    profiles = await directory_queries.company_profiles(_pool(request), principal.company_id)
    return ok([profile_view(p) for p in profiles])


async def delete_profile(request: web.Request) -> web.Response:
    principal = require(request, "profiles:write")
    profile_id = _uuid(request.match_info["profile_id"], "profile")
    try:
        removed = await registration.remove_profile(
            _pool(request), request.app[RUNTIME].registrar, principal.company_id, profile_id
        )
    except NotFound as exc:
        raise _directory_error(exc) from None
    return ok(profile_view(removed))


def add_account_routes(app: web.Application) -> None:
    app.router.add_post("/oauth2/token", token)
    app.router.add_post("/v1/companies", create_company)
    app.router.add_get("/v1/companies", list_companies)
    app.router.add_get("/v1/companies/{company_id}", get_company)
    app.router.add_post("/v1/companies/{company_id}/verify", verify_company)
    app.router.add_patch("/v1/companies/{company_id}", update_company)
    app.router.add_get("/v1/api_keys", list_keys)
    app.router.add_post("/v1/api_keys", create_key)
    app.router.add_patch("/v1/api_keys/{key_id}", update_key)
    app.router.add_post("/v1/api_keys/{key_id}/rotate", rotate_key)
    app.router.add_delete("/v1/api_keys/{key_id}", revoke_key)
    app.router.add_post("/v1/company/profiles", register_profiles)
    app.router.add_get("/v1/company/profiles", list_profiles)
    app.router.add_delete("/v1/company/profiles/{profile_id}", delete_profile)
