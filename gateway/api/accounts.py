"""Token endpoint, companies (operators), API keys, and receiving profiles."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

import smp
from gateway.api.auth import (
    OAuthError,
    Principal,
    create_api_key,
    issue_token,
    key_status,
    require,
    require_company_access,
)
from gateway.api.envelope import ApiError, ok
from gateway.directory import queries as directory_queries
from gateway.directory.participants import default_participant
from gateway.runtime import Runtime

__all__ = ["add_account_routes"]

log = structlog.get_logger("gateway.api")

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
        answer = await issue_token(
            _pool(request), client_id, secret, str(form.get("scope") or "") or None, request.remote
        )
    except OAuthError as exc:
        return web.json_response(
            {"error": exc.error, "error_description": exc.description},
            status=exc.status,
            headers={"Cache-Control": "no-store"},
        )
    return web.json_response(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# -- companies -------------------------------------------------------------------------------------


def _company_json(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "country": row["country"],
        "business_id": row["business_id"],
        "verified": row["verified"],
        "outbound_validation": row["outbound_validation"],
        "inbound_validation": row["inbound_validation"],
        "created_at": row["created_at"].isoformat(),
    }


_POLICIES = {"outbound_validation": ("reject", "warn"), "inbound_validation": ("off", "reject", "warn")}


async def update_company(request: web.Request) -> web.Response:
    """Change a company's validation policies (the operator, or the company itself)."""
    principal = require(request)
    company_id = _uuid(request.match_info["company_id"], "company")
    await require_company_access(_pool(request), principal, company_id)
    body = await _json(request)
    unknown = sorted(set(body) - set(_POLICIES))
    if unknown:
        raise ApiError(400, "validation_error", f"{unknown[0]} cannot be changed here", {"field": unknown[0]})
    for name, value in body.items():
        if value not in _POLICIES[name]:
            choices = ", ".join(_POLICIES[name])
            raise ApiError(400, "validation_error", f"{name} is one of {choices}", {"field": name})
    row = await _pool(request).fetchrow(
        """UPDATE companies SET outbound_validation = coalesce($2, outbound_validation),
                                inbound_validation = coalesce($3, inbound_validation)
           WHERE id = $1 RETURNING *""",
        company_id,
        body.get("outbound_validation"),
        body.get("inbound_validation"),
    )
    if row is None:
        raise ApiError(404, "not_found", "no such company")
    return ok(_company_json(row))


async def create_company(request: web.Request) -> web.Response:
    principal = require(request, "operator")
    body = await _json(request)
    name = str(_field(body, "name")).strip()
    country = str(_field(body, "country")).strip().upper()
    business_id = str(_field(body, "business_id")).strip()
    if len(country) != 2 or not country.isalpha():
        raise ApiError(400, "validation_error", "country is an ISO 3166 alpha-2 code", {"field": "country"})
    company_id = uuid.uuid4()
    try:
        row = await _pool(request).fetchrow(
            "INSERT INTO companies (id, name, country, business_id, verified, operator_id) "
            "VALUES ($1, $2, $3, $4, false, $5) RETURNING *",
            company_id,
            name,
            country,
            business_id,
            principal.operator_id,
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "conflict", f"a company with business id {business_id} in {country} exists") from None
    _, secret = await create_api_key(_pool(request), company_id=company_id, label="initial")
    data = _company_json(row)
    data["api_key"] = secret  # shown once
    return ok(data, status=201)


async def list_companies(request: web.Request) -> web.Response:
    principal = require(request)
    if principal.kind == "operator":
        rows = await _pool(request).fetch(
            "SELECT * FROM companies WHERE operator_id = $1 ORDER BY created_at", principal.operator_id
        )
    else:
        rows = await _pool(request).fetch("SELECT * FROM companies WHERE id = $1", principal.company_id)
    return ok([_company_json(r) for r in rows])


async def get_company(request: web.Request) -> web.Response:
    principal = require(request)
    company_id = _uuid(request.match_info["company_id"], "company")
    await require_company_access(_pool(request), principal, company_id)
    row = await _pool(request).fetchrow("SELECT * FROM companies WHERE id = $1", company_id)
    if row is None:
        raise ApiError(404, "not_found", "no such company")
    return ok(_company_json(row))


async def verify_company(request: web.Request) -> web.Response:
    principal = require(request, "operator")
    company_id = _uuid(request.match_info["company_id"], "company")
    await require_company_access(_pool(request), principal, company_id)
    async with _pool(request).acquire() as conn, conn.transaction():
        row = await conn.fetchrow("UPDATE companies SET verified = true WHERE id = $1 RETURNING *", company_id)
        await conn.execute(
            "INSERT INTO events (company_id, kind, payload) VALUES ($1, 'company.verified', $2)",
            company_id,
            json.dumps({"company_id": str(company_id)}),
        )
    pending = await _pool(request).fetch(
        "SELECT * FROM company_profiles WHERE company_id = $1 AND status = 'pending'", company_id
    )
    for participant_key in {(p["scheme"], p["value"]) for p in pending}:
        rows = [p for p in pending if (p["scheme"], p["value"]) == participant_key]
        await _publish(request, company_id, smp.ParticipantId.of(*participant_key), rows)
    return ok(_company_json(row))


# -- API keys --------------------------------------------------------------------------------------


def _key_json(row: Any) -> dict[str, Any]:
    def stamp(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {
        "id": str(row["id"]),
        "label": row["label"],
        "prefix": row["prefix"],
        "scopes": list(row["scopes"]),
        "created_at": stamp(row["created_at"]),
        "expires_at": stamp(row["expires_at"]),
        "revoked_at": stamp(row["revoked_at"]),
        "last_used_at": stamp(row["last_used_at"]),
        "last_used_ip": row["last_used_ip"],
        "status": key_status(row),
    }


def _owner_clause(principal: Principal) -> tuple[str, uuid.UUID | None]:
    if principal.kind == "company":
        return "company_id = $1", principal.company_id
    return "operator_id = $1", principal.operator_id


def _parse_time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "validation_error", f"{field} is not an ISO 8601 time", {"field": field}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def require_key_admin(request: web.Request) -> Principal:
    """Companies manage their keys with ``keys:write``; operators with ``operator``."""
    principal = require(request)
    return require(request, "keys:write" if principal.kind == "company" else "operator")


async def list_keys(request: web.Request) -> web.Response:
    principal = require(request)
    clause, owner = _owner_clause(principal)
    rows = await _pool(request).fetch(f"SELECT * FROM api_keys WHERE {clause} ORDER BY created_at", owner)  # noqa: S608 - fixed clause
    return ok([_key_json(r) for r in rows])


async def create_key(request: web.Request) -> web.Response:
    principal = require_key_admin(request)
    body = await _json(request) if request.can_read_body else {}
    allowed = set(principal.scopes)
    scopes = body.get("scopes") or sorted(allowed)
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes) or not set(scopes) <= allowed:
        raise ApiError(400, "validation_error", "scopes must be a subset of your own", {"field": "scopes"})
    key_id, secret = await create_api_key(
        _pool(request),
        company_id=principal.company_id,
        operator_id=principal.operator_id,
        label=str(body.get("label") or ""),
        scopes=scopes,
        expires_at=_parse_time(body.get("expires_at"), "expires_at"),
    )
    row = await _pool(request).fetchrow("SELECT * FROM api_keys WHERE id = $1", key_id)
    data = _key_json(row)
    data["api_key"] = secret
    return ok(data, status=201)


async def _own_key(request: web.Request, principal: Principal) -> Any:
    key_id = _uuid(request.match_info["key_id"], "API key")
    clause, owner = _owner_clause(principal)
    row = await _pool(request).fetchrow(f"SELECT * FROM api_keys WHERE id = $2 AND {clause}", owner, key_id)  # noqa: S608
    if row is None:
        raise ApiError(404, "not_found", "no such API key")
    return row


async def update_key(request: web.Request) -> web.Response:
    principal = require_key_admin(request)
    row = await _own_key(request, principal)
    body = await _json(request)
    label = body.get("label", row["label"])
    if not isinstance(label, str):
        raise ApiError(400, "validation_error", "label is a string", {"field": "label"})
    expires = _parse_time(body["expires_at"], "expires_at") if "expires_at" in body else row["expires_at"]
    updated = await _pool(request).fetchrow(
        "UPDATE api_keys SET label = $2, expires_at = $3 WHERE id = $1 RETURNING *", row["id"], label, expires
    )
    return ok(_key_json(updated))


async def rotate_key(request: web.Request) -> web.Response:
    principal = require_key_admin(request)
    row = await _own_key(request, principal)
    body = await _json(request) if request.can_read_body else {}
    grace = body.get("grace_seconds", 0)
    if not isinstance(grace, int) or not 0 <= grace <= 30 * 86400:
        raise ApiError(400, "validation_error", "grace_seconds is 0..2592000", {"field": "grace_seconds"})
    key_id, secret = await create_api_key(
        _pool(request),
        company_id=row["company_id"],
        operator_id=row["operator_id"],
        label=row["label"],
        scopes=list(row["scopes"]),
        expires_at=row["expires_at"],
    )
    if grace:
        await _pool(request).execute(
            "UPDATE api_keys SET expires_at = $2 WHERE id = $1",
            row["id"],
            datetime.now(UTC) + timedelta(seconds=grace),
        )
    else:
        await _pool(request).execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", row["id"])
    new_row = await _pool(request).fetchrow("SELECT * FROM api_keys WHERE id = $1", key_id)
    data = _key_json(new_row)
    data["api_key"] = secret
    return ok(data, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    principal = require_key_admin(request)
    row = await _own_key(request, principal)
    revoked = await _pool(request).fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *", row["id"]
    )
    return ok(_key_json(revoked))


# -- receiving profiles ----------------------------------------------------------------------------


def _profile_json(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "network": row["network"],
        "profile": row["profile"],
        "profile_version": row["version"],
        "participant_id": f"{row['scheme']}::{row['value']}",
        "status": row["status"],
        "status_reason": row["status_reason"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def _profile_event(conn: asyncpg.Connection, company_id: uuid.UUID, row: Any) -> None:
    await conn.execute(
        "INSERT INTO events (company_id, kind, payload) VALUES ($1, 'profile.status_changed', $2)",
        company_id,
        json.dumps(_profile_json(row)),
    )


async def register_profiles(request: web.Request) -> web.Response:
    principal = require(request, "profiles:write")
    assert principal.company_id is not None
    body = await _json(request)
    if str(body.get("network", "PEPPOL")).upper() != "PEPPOL":
        raise ApiError(400, "validation_error", "network must be PEPPOL", {"field": "network"})
    profiles = body.get("profiles")
    if not isinstance(profiles, list) or not profiles or not all(isinstance(p, str) for p in profiles):
        raise ApiError(400, "validation_error", "profiles is a non-empty list of names", {"field": "profiles"})
    version = str(body.get("profile_version") or "PEPPOLBIS30")
    pool = _pool(request)
    company = await pool.fetchrow("SELECT * FROM companies WHERE id = $1", principal.company_id)
    if company is None:
        raise ApiError(404, "not_found", "no such company")
    services: list[tuple[str, str]] = []
    for profile in profiles:
        try:
            for doc in smp.profile_services(profile, version):
                services += [(str(doc.document_type), str(proc)) for proc in doc.processes]
        except KeyError:
            raise ApiError(
                400, "validation_error", f"unknown profile {profile} ({version})", {"field": "profiles"}
            ) from None
    try:
        if body.get("participant_id"):
            participant = smp.ParticipantId.parse(str(body["participant_id"]))
        else:
            participant = default_participant(company["country"], company["business_id"])
    except LookupError as exc:
        raise ApiError(400, "validation_error", str(exc), {"field": "participant_id"}) from None
    except smp.IdentifierError as exc:
        raise ApiError(400, "validation_error", str(exc), {"field": "participant_id"}) from None
    owner = await pool.fetchval(
        "SELECT company_id FROM participants WHERE scheme = $1 AND value = $2",
        participant.scheme,
        participant.key,
    )
    if owner is not None and owner != principal.company_id:
        raise ApiError(409, "conflict", f"{participant} belongs to another company")
    rows = []
    async with pool.acquire() as conn, conn.transaction():
        await directory_queries.add_participant(
            conn, principal.company_id, participant.scheme, participant.value, services
        )
        for profile in profiles:
            try:
                row = await conn.fetchrow(
                    "INSERT INTO company_profiles (id, company_id, profile, version, scheme, value, status) "
                    "VALUES ($1, $2, $3, $4, $5, $6, 'pending') RETURNING *",
                    uuid.uuid4(), principal.company_id, profile, version, participant.scheme, participant.value,
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                raise ApiError(409, "conflict", f"profile {profile} {version} is already registered") from None
            await _profile_event(conn, principal.company_id, row)
            rows.append(row)
    if not company["verified"]:
        return ok([_profile_json(r) for r in rows], status=201)  # published when verified
    updated = await _publish(request, principal.company_id, participant, rows)
    return ok([_profile_json(r) for r in updated], status=201)


async def _publish(
    request: web.Request, company_id: uuid.UUID, participant: smp.ParticipantId, rows: list[Any]
) -> list[Any]:
    """Register the participant in the SML and mark its pending profiles active (or failed)."""
    runtime = request.app[RUNTIME]
    status, reason = "active", None
    if runtime.registrar is not None:
        try:
            await runtime.registrar.register(participant)
        except smp.DiscoveryError as exc:
            status, reason = "failed", str(exc)
    updated = []
    async with _pool(request).acquire() as conn, conn.transaction():
        for row in rows:
            new = await conn.fetchrow(
                "UPDATE company_profiles SET status = $2, status_reason = $3, updated_at = now() "
                "WHERE id = $1 RETURNING *",
                row["id"], status, reason,
            )  # fmt: skip
            await _profile_event(conn, company_id, new)
            updated.append(new)
    log.info("profiles_published", company=str(company_id), participant=str(participant), status=status)
    return updated


async def list_profiles(request: web.Request) -> web.Response:
    principal = require(request, "company")
    rows = await _pool(request).fetch(
        "SELECT * FROM company_profiles WHERE company_id = $1 ORDER BY created_at", principal.company_id
    )
    return ok([_profile_json(r) for r in rows])


async def delete_profile(request: web.Request) -> web.Response:
    principal = require(request, "profiles:write")
    profile_id = _uuid(request.match_info["profile_id"], "profile")
    pool = _pool(request)
    row = await pool.fetchrow(
        "SELECT * FROM company_profiles WHERE id = $1 AND company_id = $2 AND status <> 'removed'",
        profile_id,
        principal.company_id,
    )
    if row is None:
        raise ApiError(404, "not_found", "no such profile")
    doc_types = {str(d.document_type) for d in smp.profile_services(row["profile"], row["version"])}
    async with pool.acquire() as conn, conn.transaction():
        removed = await conn.fetchrow(
            "UPDATE company_profiles SET status = 'removed', updated_at = now() WHERE id = $1 RETURNING *",
            profile_id,
        )
        await conn.execute(
            "DELETE FROM participant_services WHERE scheme = $1 AND value = $2 AND document_type = ANY($3::text[])",
            row["scheme"],
            row["value"].lower(),
            list(doc_types),
        )
        await _profile_event(conn, principal.company_id, removed)  # type: ignore[arg-type]
        remaining = await conn.fetchval(
            "SELECT count(*) FROM company_profiles WHERE scheme = $1 AND value = $2 AND status <> 'removed'",
            row["scheme"],
            row["value"],
        )
        if not remaining:
            await conn.execute(
                "DELETE FROM participants WHERE scheme = $1 AND value = $2",
                row["scheme"],
                row["value"].lower(),
            )
    runtime = request.app[RUNTIME]
    if not remaining and runtime.registrar is not None:
        try:
            await runtime.registrar.unregister(smp.ParticipantId.of(row["scheme"], row["value"]))
        except smp.DiscoveryError as exc:
            log.warning("sml_unregister_failed", error=str(exc))
    return ok(_profile_json(removed))


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
