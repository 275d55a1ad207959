"""API keys, operators and bearer tokens.

Companies and operators hold API keys (random secrets, stored only as SHA-256 hashes; a hash
is enough for 256-bit random secrets). A key is traded for a short-lived bearer token (also
stored only as a hash, so revoking the key ends its tokens at once).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.security import queries
from gateway.security.errors import InvalidClient, InvalidScope, InvalidToken
from gateway.security.limits import Allowance, RateLimit
from gateway.security.queries import ApiKey, TokenGrant

__all__ = [
    "COMPANY_SCOPES",
    "CONSOLE_SESSION_TTL",
    "EXPIRING_SOON",
    "OPERATOR_SCOPES",
    "TOKEN_TTL",
    "IssuedToken",
    "KeyStatus",
    "authenticate_token",
    "check_grant",
    "console_session",
    "create_api_key",
    "create_operator",
    "csrf_token",
    "granted_scopes",
    "hash_secret",
    "issue_token",
    "key_status",
    "new_secret",
    "open_console_session",
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
CONSOLE_SESSION_TTL = timedelta(hours=8)  # a working day in the console, then sign in again
EXPIRING_SOON = timedelta(days=14)


class KeyStatus(enum.StrEnum):
    """What an API key is good for now (derived from its times, never stored)."""

    ACTIVE = "active"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED = "expired"
    REVOKED = "revoked"


def hash_secret(secret: str) -> bytes:
    """The stored form of a key or token secret."""
    return hashlib.sha256(secret.encode()).digest()


def new_secret(kind: str) -> str:
    """A 256-bit random secret, prefixed with its kind (``gwk`` keys, ``gwt`` tokens)."""
    return f"{kind}_{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"


def key_status(key: ApiKey, now: datetime | None = None) -> KeyStatus:
    now = now or datetime.now(UTC)
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    if key.expires_at is not None and key.expires_at <= now:
        return KeyStatus.EXPIRED
    if key.expires_at is not None and key.expires_at <= now + EXPIRING_SOON:
        return KeyStatus.EXPIRING_SOON
    return KeyStatus.ACTIVE


def granted_scopes(carried: Sequence[str], wanted: str | None) -> list[str]:
    """The scopes a token gets: all the key carries, or the asked (space-separated) subset."""
    if not wanted:
        return list(carried)
    asked = wanted.split()
    missing = [s for s in asked if s not in carried]
    if missing:
        raise InvalidScope(f"the key does not carry: {' '.join(missing)}")
    return asked


async def create_api_key(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    company_id: uuid.UUID | None = None,
    operator_id: uuid.UUID | None = None,
    label: str = "",
    scopes: Sequence[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[uuid.UUID, str]:
    """A new key; the plain secret is returned once and never stored."""
    default = COMPANY_SCOPES if company_id else OPERATOR_SCOPES
    secret = new_secret("gwk")
    key_id = uuid.uuid4()
    await queries.add_api_key(
        conn,
        key_id=key_id,
        company_id=company_id,
        operator_id=operator_id,
        label=label,
        scopes=list(scopes or default),
        key_hash=hash_secret(secret),
        prefix=secret[:10],
        expires_at=expires_at,
    )
    return key_id, secret


async def create_operator(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> tuple[uuid.UUID, str]:
    """A new operator and its first (vendor) key; the secret is returned once."""
    operator_id = uuid.uuid4()
    await queries.add_operator(conn, operator_id, name)
    _, secret = await create_api_key(conn, operator_id=operator_id, label="initial")
    return operator_id, secret


async def _client_key(pool: asyncpg.Pool, client_id: str, client_secret: str) -> ApiKey:
    """The usable key behind a client id and secret; :class:`InvalidClient` otherwise."""
    key = await queries.api_key_by_hash(pool, hash_secret(client_secret))
    owner = str(key.company_id or key.operator_id) if key else None
    if key is None or owner != client_id.strip():
        raise InvalidClient("unknown client id or secret")
    status = key_status(key)
    if status in (KeyStatus.REVOKED, KeyStatus.EXPIRED):
        raise InvalidClient(f"the API key is {status}")
    return key


@dataclass(frozen=True)
class IssuedToken:
    """A bearer token (its secret is shown once) and what it grants."""

    access_token: str
    scopes: tuple[str, ...]
    expires_in: int  # seconds


async def issue_token(
    pool: asyncpg.Pool, client_id: str, client_secret: str, scope: str | None, client_ip: str | None
) -> IssuedToken:
    """Client-credentials grant: the key behind ``client_secret`` must belong to ``client_id``."""
    key = await _client_key(pool, client_id, client_secret)
    granted = granted_scopes(key.scopes, scope)
    token = new_secret("gwt")
    await queries.record_token(
        pool,
        token_hash=hash_secret(token),
        key_id=key.id,
        scopes=granted,
        expires_at=datetime.now(UTC) + TOKEN_TTL,
        client_ip=client_ip,
    )
    return IssuedToken(token, tuple(granted), int(TOKEN_TTL.total_seconds()))


def check_grant(grant: TokenGrant | None, now: datetime) -> TokenGrant:
    """The grant if the token still admits its holder; else :class:`InvalidToken` saying why."""
    if grant is None:
        raise InvalidToken("the token is not known")
    if grant.expires_at <= now:
        raise InvalidToken("the token has expired; ask /oauth2/token for a new one")
    if grant.key_revoked_at is not None:
        raise InvalidToken("the API key behind this token was revoked")
    if grant.key_expires_at is not None and grant.key_expires_at <= now:
        raise InvalidToken("the API key behind this token has expired")
    return grant


async def authenticate_token(pool: asyncpg.Pool, token: str) -> TokenGrant:
    """What a bearer token grants; :class:`InvalidToken` unless it admits its holder now."""
    grant = await queries.token_grant(pool, hash_secret(token))
    return check_grant(grant, datetime.now(UTC))


async def authenticate_and_take(pool: asyncpg.Pool, token: str, rule: RateLimit) -> tuple[TokenGrant, Allowance | None]:
    """:func:`authenticate_token` and, for a grant it accepts, a token of ``rule`` for its API
    key, in one statement. The allowance is None when no rate token was taken (the grant and
    the check disagreed at the boundary of an expiry): take it separately."""
    now = datetime.now(UTC)
    grant, taken = await queries.token_grant_and_rate_token(
        pool, hash_secret(token), now, capacity=float(rule.limit), rate=rule.rate
    )
    return check_grant(grant, now), None if taken is None else rule.allowance(*taken)


# -- console sessions: the same credentials, held by a browser -------------------------------------


async def open_console_session(
    pool: asyncpg.Pool, client_id: str, client_secret: str, client_ip: str | None
) -> tuple[str, TokenGrant]:
    """Sign a browser in with the credentials of the token endpoint. Returns the session secret
    (for the cookie; only its hash is stored) and what the session grants: the key's scopes,
    for :data:`CONSOLE_SESSION_TTL`."""
    key = await _client_key(pool, client_id, client_secret)
    secret = new_secret("gws")
    expires_at = datetime.now(UTC) + CONSOLE_SESSION_TTL
    async with pool.acquire() as conn, conn.transaction():
        await queries.add_console_session(
            conn, session_hash=hash_secret(secret), key_id=key.id, scopes=list(key.scopes), expires_at=expires_at,
            client_ip=client_ip,
        )  # fmt: skip
    grant = TokenGrant(
        frozenset(key.scopes), expires_at, key.id, key.company_id, key.operator_id, key.revoked_at, key.expires_at
    )
    return secret, grant


async def console_session(pool: asyncpg.Pool, secret: str) -> TokenGrant:
    """What a console session grants now; :class:`InvalidToken` once it ended (expired, signed
    out, its key revoked or expired)."""
    grant = await queries.console_session_grant(pool, hash_secret(secret))
    return check_grant(grant, datetime.now(UTC))


def csrf_token(session_secret: str) -> str:
    """The session's anti-forgery token, put in every form: derived from the session secret
    (which only the HttpOnly cookie holds), so another site can neither read nor compute it
    and nothing more is stored."""
    mac = hmac.new(session_secret.encode(), b"console-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")
