"""The security domain's SQL (operators, API keys, access tokens, rate limits), behind typed functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

__all__ = [
    "ApiKey",
    "TokenGrant",
    "add_api_key",
    "add_operator",
    "api_key",
    "api_key_by_hash",
    "api_keys_of",
    "end_api_key",
    "operator_named",
    "owned_api_key",
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


async def token_grant(conn: Executor, token_hash: bytes) -> TokenGrant | None:
    row = await conn.fetchrow(
        """SELECT t.scopes, t.expires_at, k.id AS key_id, k.company_id, k.operator_id, k.revoked_at,
                  k.expires_at AS key_expires_at
           FROM access_tokens t JOIN api_keys k ON k.id = t.api_key_id WHERE t.token_hash = $1""",
        token_hash,
    )
    if row is None:
        return None
    return TokenGrant(
        scopes=frozenset(row["scopes"]),
        expires_at=row["expires_at"],
        key_id=row["key_id"],
        company_id=row["company_id"],
        operator_id=row["operator_id"],
        key_revoked_at=row["revoked_at"],
        key_expires_at=row["key_expires_at"],
    )


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
