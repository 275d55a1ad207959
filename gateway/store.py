"""All SQL of the access point core, behind typed functions. Business code never writes SQL."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

__all__ = [
    "InboundRecord",
    "OutboundJob",
    "OutboundSubmission",
    "add_company",
    "add_participant",
    "claim_outbound",
    "find_inbound_receipt",
    "mark_outbound",
    "outbound_status",
    "participant_services",
    "put_document",
    "serving_company",
    "store_inbound",
    "submit_outbound",
]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def put_document(conn: asyncpg.Connection, data: bytes) -> bytes:
    """Store bytes once, keyed by their SHA-256; returns the key."""
    digest = sha256(data)
    await conn.execute(
        "INSERT INTO documents (sha256, size_bytes, content) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
        digest,
        len(data),
        data,
    )
    return digest


# -- companies and participants -----------------------------------------------------------------


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


async def serving_company(
    conn: asyncpg.Connection | asyncpg.Pool,
    scheme: str,
    value: str,
    document_type: str,
    process: str,
) -> uuid.UUID | None:
    """The verified company receiving this document type and process as this participant."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT p.company_id FROM participants p "
        "JOIN participant_services s ON s.scheme = p.scheme AND s.value = p.value "
        "JOIN companies c ON c.id = p.company_id "
        "WHERE p.scheme = $1 AND p.value = $2 AND s.document_type = $3 AND s.process = $4 "
        "AND c.verified",
        scheme,
        value.lower(),
        document_type,
        process,
    )


# -- inbound ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundRecord:
    as4_message_id: str
    sending_ap: str
    sender_cert_subject: str
    conversation_id: str
    sender: tuple[str, str]  # (scheme, value)
    receiver: tuple[str, str]
    document_type: str
    process: str
    country_c1: str
    instance_identifier: str
    sent_at: datetime
    company_id: uuid.UUID


async def find_inbound_receipt(
    conn: asyncpg.Connection | asyncpg.Pool, as4_message_id: str, sending_ap: str
) -> bytes | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT receipt FROM inbound_messages WHERE as4_message_id = $1 AND sending_ap = $2",
        as4_message_id,
        sending_ap,
    )


async def store_inbound(
    pool: asyncpg.Pool, record: InboundRecord, sbd: bytes, message: bytes, receipt: bytes
) -> tuple[bool, bytes]:
    """Store the document, the message as evidence, its metadata, a mailbox entry and a
    "document.received" event in one transaction.

    Returns ``(stored, receipt)``: for a duplicate (same MessageId from the same access point,
    even one racing this call) nothing is stored and the first receipt is returned.
    """
    doc, evidence = sha256(sbd), sha256(message)
    event = json.dumps(
        {
            "as4_message_id": record.as4_message_id,
            "sender": f"{record.sender[0]}::{record.sender[1]}",
            "receiver": f"{record.receiver[0]}::{record.receiver[1]}",
            "document_type": record.document_type,
            "process": record.process,
        }
    )
    try:
        # One statement: its data-modifying parts commit together or not at all.
        await pool.execute(
            """WITH docs AS (
                   INSERT INTO documents (sha256, size_bytes, content)
                   VALUES ($12, $13, $20), ($18, $14, $21)
                   ON CONFLICT (sha256) DO NOTHING),
               msg AS (
                   INSERT INTO inbound_messages (
                       as4_message_id, sending_ap, sender_cert_subject, conversation_id,
                       sender_scheme, sender_value, receiver_scheme, receiver_value,
                       document_type, process, country_c1, document_sha256, payload_bytes,
                       message_bytes, receipt, sent_at, instance_identifier, message_sha256,
                       company_id)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)
                   RETURNING id),
               box AS (
                   INSERT INTO mailbox_entries (company_id, message_id) SELECT $19, id FROM msg)
               INSERT INTO events (company_id, kind, payload)
               SELECT $19, 'document.received', jsonb_set($22::jsonb, '{message_id}', to_jsonb(id))
               FROM msg""",
            record.as4_message_id,
            record.sending_ap,
            record.sender_cert_subject,
            record.conversation_id,
            record.sender[0],
            record.sender[1],
            record.receiver[0],
            record.receiver[1],
            record.document_type,
            record.process,
            record.country_c1,
            doc,
            len(sbd),
            len(message),
            receipt,
            record.sent_at,
            record.instance_identifier,
            evidence,
            record.company_id,
            sbd,
            message,
            event,
        )
    except asyncpg.UniqueViolationError:
        first = await find_inbound_receipt(pool, record.as4_message_id, record.sending_ap)
        assert first is not None
        return False, first
    return True, receipt


# -- outbound --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundSubmission:
    sender: str
    receiver: str
    document_type: str
    process: str
    country_c1: str
    instance_identifier: str
    sbd: bytes
    as4_message_id: str
    conversation_id: str
    give_up_at: datetime
    company_id: uuid.UUID | None = None
    endpoint_url: str | None = None
    endpoint_cert: bytes | None = None


@dataclass(frozen=True)
class OutboundJob:
    id: int
    sender: str
    receiver: str
    document_type: str
    process: str
    country_c1: str
    sbd: bytes
    as4_message_id: str
    conversation_id: str
    attempts: int
    give_up_at: datetime
    created_at: datetime
    endpoint_url: str | None
    endpoint_cert: bytes | None
    fixed_endpoint: bool


async def submit_outbound(pool: asyncpg.Pool, submission: OutboundSubmission) -> int:
    """Store the document and its outbound job (and the first audit line) in one transaction."""
    job_id = await pool.fetchval(
        """WITH doc AS (
               INSERT INTO documents (sha256, size_bytes, content) VALUES ($8, $15, $16)
               ON CONFLICT (sha256) DO NOTHING),
           job AS (
               INSERT INTO outbound_messages (
                   company_id, sender, receiver, document_type, process, country_c1,
                   instance_identifier, document_sha256, as4_message_id, conversation_id, give_up_at,
                   endpoint_url, endpoint_cert, fixed_endpoint)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) RETURNING id),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, 'queued', 'submitted' FROM job)
           SELECT id FROM job""",
        submission.company_id,
        submission.sender,
        submission.receiver,
        submission.document_type,
        submission.process,
        submission.country_c1,
        submission.instance_identifier,
        sha256(submission.sbd),
        submission.as4_message_id,
        submission.conversation_id,
        submission.give_up_at,
        submission.endpoint_url,
        submission.endpoint_cert,
        submission.endpoint_url is not None,
        len(submission.sbd),
        submission.sbd,
    )
    return int(job_id)


async def claim_outbound(
    pool: asyncpg.Pool, lease_seconds: float = 300.0, job_id: int | None = None
) -> OutboundJob | None:
    """Take the next due job, if any. ``FOR UPDATE SKIP LOCKED`` lets many workers in many
    processes share the queue; a job whose worker died is taken again after its lease."""
    row = await pool.fetchrow(
        """WITH claimed AS (
               UPDATE outbound_messages o
               SET state = 'sending', attempts = o.attempts + 1, updated_at = now(),
                   locked_until = now() + make_interval(secs => $1)
               WHERE o.id = (
                   SELECT id FROM outbound_messages
                   WHERE ((state IN ('queued', 'retrying') AND next_attempt_at <= now())
                          OR (state = 'sending' AND locked_until < now()))
                     AND ($2::bigint IS NULL OR id = $2)
                   ORDER BY next_attempt_at
                   FOR UPDATE SKIP LOCKED
                   LIMIT 1)
               RETURNING o.*),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, 'sending', 'attempt ' || attempts FROM claimed)
           SELECT c.id, c.sender, c.receiver, c.document_type, c.process, c.country_c1,
                  d.content AS sbd, c.as4_message_id, c.conversation_id, c.attempts, c.give_up_at,
                  c.created_at, c.endpoint_url, c.endpoint_cert, c.fixed_endpoint
           FROM claimed c JOIN documents d ON d.sha256 = c.document_sha256""",
        lease_seconds,
        job_id,
    )
    if row is None:
        return None
    return OutboundJob(**dict(row))


async def mark_outbound(
    pool: asyncpg.Pool,
    job_id: int,
    state: str,
    reason: str,
    *,
    next_attempt_at: datetime | None = None,
    error_code: str | None = None,
    receipt: bytes | None = None,
    sent_message: bytes | None = None,
    endpoint_url: str | None = None,
    receiver_ap: str | None = None,
) -> None:
    """Record an outcome (delivered, retrying, failed), its audit line and, when final, the
    event for the company, in one statement."""
    sent_sha = sha256(sent_message) if sent_message is not None else None
    event = json.dumps({"outbound_id": job_id, "reason": reason, "error_code": error_code})
    await pool.execute(
        """WITH doc AS (
               INSERT INTO documents (sha256, size_bytes, content)
               SELECT $7, length($12::bytea), $12 WHERE $12::bytea IS NOT NULL
               ON CONFLICT (sha256) DO NOTHING),
           upd AS (
               UPDATE outbound_messages SET
                   state = $2, updated_at = now(), locked_until = NULL,
                   next_attempt_at = COALESCE($3, next_attempt_at),
                   error_code = $4, last_error = CASE WHEN $2 = 'delivered' THEN NULL ELSE $5 END,
                   receipt = COALESCE($6, receipt),
                   sent_message_sha256 = COALESCE($7, sent_message_sha256),
                   endpoint_url = COALESCE($8, endpoint_url),
                   receiver_ap = COALESCE($9, receiver_ap),
                   delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END
               WHERE id = $1
               RETURNING id, company_id),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason) SELECT id, $2, $5 FROM upd)
        INSERT INTO events (company_id, kind, payload)
        SELECT company_id, $10, $11::jsonb FROM upd WHERE $2 IN ('delivered', 'failed')""",
        job_id,
        state,
        next_attempt_at,
        error_code,
        reason,
        receipt,
        sent_sha,
        endpoint_url,
        receiver_ap,
        f"document.{state}",
        event,
        sent_message,
    )


@dataclass(frozen=True)
class OutboundStatus:
    id: int
    state: str
    attempts: int
    error_code: str | None
    last_error: str | None
    next_attempt_at: datetime
    audit: list[tuple[datetime, str, str]]


async def outbound_status(conn: asyncpg.Connection | asyncpg.Pool, job_id: int) -> OutboundStatus | None:
    row = await conn.fetchrow(
        "SELECT id, state, attempts, error_code, last_error, next_attempt_at FROM outbound_messages WHERE id = $1",
        job_id,
    )
    if row is None:
        return None
    audit = await conn.fetch("SELECT at, state, reason FROM outbound_audit WHERE outbound_id = $1 ORDER BY id", job_id)
    return OutboundStatus(**dict(row), audit=[(a["at"], a["state"], a["reason"]) for a in audit])
