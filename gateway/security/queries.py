"""The security domain's SQL (operators, API keys, access tokens, rate limits), behind typed functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

__all__ = [
    "ApiKey",
    "IdempotencyOwner",
    "KeptAnswer",
    "TokenGrant",
    "add_api_key",
    "add_console_session",
    "add_operator",
    "api_key",
    "api_key_by_hash",
    "api_keys_of",
    "claim_idempotency_key",
    "console_session_grant",
    "end_api_key",
    "end_console_session",
    "keep_idempotent_answer",
    "kept_answer",
    "operator_name",
    "operator_named",
    "owned_api_key",
    "purge_idempotency_keys",
    "record_token",
    "revoke_api_key",
    "revoke_labelled_keys",
    "take_rate_token",
    "token_grant",
    "update_api_key",
]

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored (never its secret: only the hash is kept, and not shown here)."""

    id: uuid.UUID
    company_id: uuid.UUID | None
    operator_id: uuid.UUID | None
    label: str
    scopes: tuple[str, ...]
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None


_KEY_COLUMNS = (
    "id, company_id, operator_id, label, scopes, prefix, created_at, expires_at, revoked_at, last_used_at, last_used_ip"
)


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        company_id=row["company_id"],
        operator_id=row["operator_id"],
        label=row["label"],
        scopes=tuple(row["scopes"]),
        prefix=row["prefix"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        last_used_ip=row["last_used_ip"],
    )


@dataclass(frozen=True)
class TokenGrant:
    """What a bearer token grants, with the state of the key behind it."""

    scopes: frozenset[str]
    expires_at: datetime
    key_id: uuid.UUID
    company_id: uuid.UUID | None
    operator_id: uuid.UUID | None
    key_revoked_at: datetime | None
    key_expires_at: datetime | None


async def add_operator(conn: Executor, operator_id: uuid.UUID, name: str) -> None:
    await conn.execute("INSERT INTO operators (id, name) VALUES ($1, $2)", operator_id, name)


async def operator_name(conn: Executor, operator_id: uuid.UUID) -> str | None:
    name: str | None = await conn.fetchval("SELECT name FROM operators WHERE id = $1", operator_id)
    return name


async def operator_named(conn: Executor, name: str) -> uuid.UUID | None:
    """The first operator of this name (the sandbox finds its own again on each start)."""
    found: uuid.UUID | None = await conn.fetchval("SELECT id FROM operators WHERE name = $1", name)
    return found


async def add_api_key(
    conn: Executor,
    *,
    key_id: uuid.UUID,
    company_id: uuid.UUID | None,
    operator_id: uuid.UUID | None,
    label: str,
    scopes: list[str],
    key_hash: bytes,
    prefix: str,
    expires_at: datetime | None,
) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, company_id, operator_id, label, scopes, key_hash, prefix, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        key_id, company_id, operator_id, label, scopes, key_hash, prefix, expires_at,
    )  # fmt: skip


async def api_key(conn: Executor, key_id: uuid.UUID) -> ApiKey | None:
    row = await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id)  # noqa: S608 - fixed columns
    return None if row is None else _key(row)


async def api_key_by_hash(conn: Executor, key_hash: bytes) -> ApiKey | None:
    row = await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1", key_hash)  # noqa: S608
    return None if row is None else _key(row)


async def api_keys_of(conn: Executor, *, company_id: uuid.UUID | None, operator_id: uuid.UUID | None) -> list[ApiKey]:
    """The keys of a company or an operator (the other id is None), oldest first."""
    rows = await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE company_id = $1 OR operator_id = $2 ORDER BY created_at",  # noqa: S608
        company_id,
        operator_id,
    )
    return [_key(r) for r in rows]


async def owned_api_key(
    conn: Executor, key_id: uuid.UUID, *, company_id: uuid.UUID | None, operator_id: uuid.UUID | None
) -> ApiKey | None:
    """The key if it belongs to the company or operator (the other id is None)."""
    row = await conn.fetchrow(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = $1 AND (company_id = $2 OR operator_id = $3)",  # noqa: S608
        key_id,
        company_id,
        operator_id,
    )
    return None if row is None else _key(row)


async def update_api_key(conn: Executor, key_id: uuid.UUID, label: str, expires_at: datetime | None) -> ApiKey:
    row = await conn.fetchrow(
        f"UPDATE api_keys SET label = $2, expires_at = $3 WHERE id = $1 RETURNING {_KEY_COLUMNS}",  # noqa: S608
        key_id,
        label,
        expires_at,
    )
    assert row is not None
    return _key(row)


async def end_api_key(conn: Executor, key_id: uuid.UUID, expires_at: datetime | None) -> None:
    """Let a key run out at ``expires_at``, or revoke it now when None (after a rotation)."""
    if expires_at is None:
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)
    else:
        await conn.execute("UPDATE api_keys SET expires_at = $2 WHERE id = $1", key_id, expires_at)


async def revoke_api_key(conn: Executor, key_id: uuid.UUID) -> ApiKey:
    """Revoke a key; revoking it again keeps the first revocation time."""
    row = await conn.fetchrow(
        f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {_KEY_COLUMNS}",  # noqa: S608
        key_id,
    )
    assert row is not None
    return _key(row)


async def revoke_labelled_keys(conn: Executor, label: str) -> None:
    """Revoke every live key with this label (the sandbox's keys of an earlier start)."""
    await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE label = $1 AND revoked_at IS NULL", label)


async def record_token(
    pool: asyncpg.Pool,
    *,
    token_hash: bytes,
    key_id: uuid.UUID,
    scopes: list[str],
    expires_at: datetime,
    client_ip: str | None,
) -> None:
    """Store an issued token's hash and note the key's use, together."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO access_tokens (token_hash, api_key_id, scopes, expires_at) VALUES ($1, $2, $3, $4)",
            token_hash,
            key_id,
            scopes,
            expires_at,
        )
        await conn.execute(
            "UPDATE api_keys SET last_used_at = now(), last_used_ip = $2 WHERE id = $1", key_id, client_ip
        )


def _grant(row: asyncpg.Record) -> TokenGrant:
    """A token's or a console session's grant, with the state of the API key behind it."""
    return TokenGrant(
        scopes=frozenset(row["scopes"]),
        expires_at=row["expires_at"],
        key_id=row["key_id"],
        company_id=row["company_id"],
        operator_id=row["operator_id"],
        key_revoked_at=row["revoked_at"],
        key_expires_at=row["key_expires_at"],
    )


async def token_grant(conn: Executor, token_hash: bytes) -> TokenGrant | None:
    row = await conn.fetchrow(
        """SELECT t.scopes, t.expires_at, k.id AS key_id, k.company_id, k.operator_id, k.revoked_at,
                  k.expires_at AS key_expires_at
           FROM access_tokens t JOIN api_keys k ON k.id = t.api_key_id WHERE t.token_hash = $1""",
        token_hash,
    )
    return None if row is None else _grant(row)


# The grant of a token and, when it admits its holder at $2 (the rule of credentials.check_grant,
# at the time the caller then checks it with), a token of the rate limit of its API key ($3
# capacity, $4 per second; the upsert of take_rate_token): what every API request needs, in one
# round trip.
_GRANT_AND_TAKE = """
    WITH g AS (
               SELECT t.scopes, t.expires_at, k.id AS key_id, k.company_id, k.operator_id, k.revoked_at,
                      k.expires_at AS key_expires_at
               FROM access_tokens t JOIN api_keys k ON k.id = t.api_key_id WHERE t.token_hash = $1),
           take AS (
               INSERT INTO rate_buckets AS b (key, tokens, allowed, updated_at)
               SELECT key_id::text, $3 - 1, true, clock_timestamp() FROM g
               WHERE expires_at > $2 AND revoked_at IS NULL AND (key_expires_at IS NULL OR key_expires_at > $2)
               ON CONFLICT (key) DO UPDATE SET
                   allowed = least($3, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $4) >= 1,
                   tokens = least($3, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $4)
                            - CASE WHEN least($3, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $4)
                                        >= 1
                                   THEN 1 ELSE 0 END,
                   updated_at = clock_timestamp()
               RETURNING allowed, tokens)
    SELECT g.*, take.allowed, take.tokens FROM g LEFT JOIN take ON true"""


async def token_grant_and_rate_token(
    conn: Executor, token_hash: bytes, now: datetime, *, capacity: float, rate: float
) -> tuple[TokenGrant | None, tuple[bool, float] | None]:
    """:func:`token_grant`, and :func:`take_rate_token` for its API key when the grant admits
    its holder at ``now``; the second is None when no rate token was taken."""
    row = await conn.fetchrow(_GRANT_AND_TAKE, token_hash, now, capacity, rate)
    if row is None:
        return None, None
    taken = None if row["allowed"] is None else (bool(row["allowed"]), max(0.0, float(row["tokens"])))
    return _grant(row), taken


async def take_rate_token(pool: Executor, key: str, *, capacity: float, rate: float) -> tuple[bool, float]:
    """Refill ``key``'s bucket (``rate`` tokens a second, at most ``capacity``) and take one token
    if there is one; returns (taken, tokens left)."""
    row = await pool.fetchrow(
        """INSERT INTO rate_buckets AS b (key, tokens, allowed, updated_at)
           VALUES ($1, $2 - 1, true, clock_timestamp())
           ON CONFLICT (key) DO UPDATE SET
               allowed = least($2, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $3) >= 1,
               tokens = least($2, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $3)
                        - CASE WHEN least($2, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $3) >= 1
                               THEN 1 ELSE 0 END,
               updated_at = clock_timestamp()
           RETURNING allowed, tokens""",
        key,
        capacity,
        rate,
    )
    assert row is not None
    return bool(row["allowed"]), max(0.0, float(row["tokens"]))


# -- idempotency keys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IdempotencyOwner:
    """Whose key it is: a key is unique per company, or per operator for operators' requests."""

    company_id: uuid.UUID | None = None
    operator_id: uuid.UUID | None = None

    @property
    def id(self) -> uuid.UUID:
        owner = self.company_id or self.operator_id
        assert owner is not None
        return owner


@dataclass(frozen=True)
class KeptAnswer:
    """The answer given to the first request with a key, to give again to its retries."""

    request_sha256: bytes | None  # None for keys kept before requests were hashed
    status: int
    response: str  # the body as it was sent


_CLAIM_KEY = """
    INSERT INTO idempotency_keys AS k (company_id, operator_id, key, request_sha256, status, response, created_at)
    VALUES ($1, $2, $3, $4, NULL, NULL, now())
    ON CONFLICT (owner, key) DO UPDATE
        SET request_sha256 = EXCLUDED.request_sha256, status = NULL, response = NULL, created_at = now()
        WHERE k.created_at < now() - make_interval(secs => $5)
    RETURNING true"""


async def claim_idempotency_key(
    conn: asyncpg.Connection, owner: IdempotencyOwner, key: str, request_sha256: bytes, lifetime: float
) -> bool:
    """Claim the key in the caller's transaction; False when it is taken (by a request that
    committed: a concurrent claim waits on the unique index for the first one's end, and wins
    if that rolled back). A key older than ``lifetime`` seconds is taken over as a new one."""
    claimed = await conn.fetchval(_CLAIM_KEY, owner.company_id, owner.operator_id, key, request_sha256, lifetime)
    return bool(claimed)


_KEEP_ANSWER = "UPDATE idempotency_keys SET status = $3, response = $4 WHERE owner = $1 AND key = $2"


async def keep_idempotent_answer(
    conn: asyncpg.Connection, owner: IdempotencyOwner, key: str, status: int, response: str
) -> None:
    """Keep the answer of the claimed key, in the transaction that claimed it."""
    await conn.execute(_KEEP_ANSWER, owner.id, key, status, response)


_KEPT_ANSWER = """
    SELECT request_sha256, status, response FROM idempotency_keys
    WHERE owner = $1 AND key = $2 AND created_at >= now() - make_interval(secs => $3) AND status IS NOT NULL"""


async def kept_answer(db: Executor, owner: IdempotencyOwner, key: str, lifetime: float) -> KeptAnswer | None:
    """The committed answer of a key younger than ``lifetime`` seconds."""
    row = await db.fetchrow(_KEPT_ANSWER, owner.id, key, lifetime)
    if row is None:
        return None
    digest = row["request_sha256"]
    return KeptAnswer(None if digest is None else bytes(digest), row["status"], row["response"])


_PURGE_KEYS = """
    DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED))"""


async def purge_idempotency_keys(db: Executor, lifetime: float, batch: int = 50) -> int:
    """Delete up to ``batch`` keys older than ``lifetime`` seconds (an index range, skipping rows
    others hold): run at each claim, it removes more keys than are claimed."""
    done = await db.execute(_PURGE_KEYS, lifetime, batch)
    return int(done.split()[-1])


# -- console sessions ------------------------------------------------------------------------------


async def add_console_session(
    conn: Executor,
    *,
    session_hash: bytes,
    key_id: uuid.UUID,
    scopes: list[str],
    expires_at: datetime,
    client_ip: str | None,
) -> None:
    """Keep a console session's hash (and forget sessions that have ended, so the table stays
    small), and note the key's use."""
    await conn.execute("DELETE FROM console_sessions WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO console_sessions (session_hash, api_key_id, scopes, expires_at, client_ip) "
        "VALUES ($1, $2, $3, $4, $5)",
        session_hash,
        key_id,
        scopes,
        expires_at,
        client_ip,
    )
    await conn.execute("UPDATE api_keys SET last_used_at = now(), last_used_ip = $2 WHERE id = $1", key_id, client_ip)


async def console_session_grant(conn: Executor, session_hash: bytes) -> TokenGrant | None:
    """What a console session grants, with the state of the key behind it (as for a token)."""
    row = await conn.fetchrow(
        """SELECT s.scopes, s.expires_at, k.id AS key_id, k.company_id, k.operator_id, k.revoked_at,
                  k.expires_at AS key_expires_at
           FROM console_sessions s JOIN api_keys k ON k.id = s.api_key_id WHERE s.session_hash = $1""",
        session_hash,
    )
    return None if row is None else _grant(row)


async def end_console_session(conn: Executor, session_hash: bytes) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE session_hash = $1", session_hash)
