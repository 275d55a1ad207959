"""The directory domain's SQL, behind typed functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


async def add_company(
    conn: asyncpg.Connection, name: str, country: str, business_id: str, *, verified: bool = True
) -> uuid.UUID:
    row = await conn.fetchrow(
        "INSERT INTO companies (id, name, country, business_id, verified) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (country, business_id) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        uuid.uuid4(),
        name,
        country.upper(),
        business_id,
        verified,
    )
    assert row is not None
    return row["id"]  # type: ignore[no-any-return]


async def add_participant(
    conn: asyncpg.Connection,
    company_id: uuid.UUID,
    scheme: str,
    value: str,
    services: list[tuple[str, str]],
) -> None:
    """Register a participant for a company with (document type, process) pairs it receives."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO participants (scheme, value, display, company_id) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (scheme, value) DO UPDATE SET company_id = EXCLUDED.company_id",
            scheme,
            value.lower(),
            value,
            company_id,
        )
        await conn.executemany(
            "INSERT INTO participant_services (scheme, value, document_type, process) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [(scheme, value.lower(), doc, proc) for doc, proc in services],
        )


async def participant_services(
    conn: asyncpg.Connection | asyncpg.Pool, scheme: str, value: str
) -> list[tuple[str, str]] | None:
    """(document type, process) pairs of a participant we serve; None if we do not serve it."""
    rows = await conn.fetch(
        "SELECT s.document_type, s.process FROM participants p "
        "LEFT JOIN participant_services s ON s.scheme = p.scheme AND s.value = p.value "
        "JOIN companies c ON c.id = p.company_id "
        "WHERE p.scheme = $1 AND p.value = $2 AND c.verified ORDER BY s.document_type, s.process",
        scheme,
        value.lower(),
    )
    if not rows:
        return None
    return [(r["document_type"], r["process"]) for r in rows if r["document_type"] is not None]


@dataclass(frozen=True)
class ReceivingCompany:
    id: uuid.UUID
    country: str
    inbound_validation: str  # "off", "reject" or "warn"


async def serving_company(
    conn: asyncpg.Connection | asyncpg.Pool,
    scheme: str,
    value: str,
    document_type: str,
    process: str,
) -> ReceivingCompany | None:
    """The verified company receiving this document type and process as this participant."""
    row = await conn.fetchrow(
        "SELECT c.id, c.country, c.inbound_validation FROM participants p "
        "JOIN participant_services s ON s.scheme = p.scheme AND s.value = p.value "
        "JOIN companies c ON c.id = p.company_id "
        "WHERE p.scheme = $1 AND p.value = $2 AND s.document_type = $3 AND s.process = $4 "
        "AND c.verified",
        scheme,
        value.lower(),
        document_type,
        process,
    )
    return None if row is None else ReceivingCompany(row["id"], row["country"], row["inbound_validation"])


async def company_verified(conn: asyncpg.Connection | asyncpg.Pool, company_id: uuid.UUID) -> bool:
    """Whether an operator verified the company (only verified companies send and receive)."""
    return bool(await conn.fetchval("SELECT verified FROM companies WHERE id = $1", company_id))


async def outbound_validation(conn: asyncpg.Connection | asyncpg.Pool, company_id: uuid.UUID) -> str | None:
    """The company's policy for documents it sends that break rules: "reject" or "warn"."""
    policy = await conn.fetchval("SELECT outbound_validation FROM companies WHERE id = $1", company_id)
    return None if policy is None else str(policy)


async def owns_participant(
    conn: asyncpg.Connection | asyncpg.Pool, company_id: uuid.UUID, scheme: str, value: str
) -> bool:
    """Whether the participant is the company's own (a company sends only as itself)."""
    found = await conn.fetchval(
        "SELECT true FROM participants WHERE company_id = $1 AND scheme = $2 AND value = $3",
        company_id,
        scheme,
        value,
    )
    return bool(found)


async def operator_companies(conn: asyncpg.Connection | asyncpg.Pool, operator_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM companies WHERE operator_id = $1", operator_id)
    return [r["id"] for r in rows]
