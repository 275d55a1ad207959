"""All SQL of the access point core, behind typed functions. Business code never writes SQL."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

__all__ = [
    "InboundRecord",
    "OutboundJob",
    "OutboundSubmission",
    "ReceivingCompany",
    "add_company",
    "add_participant",
    "claim_outbound",
    "find_inbound_receipt",
    "mark_outbound",
    "outbound_status",
    "participant_services",
    "put_document",
    "reporting_counts",
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
    country_c1: str | None
    instance_identifier: str
    sent_at: datetime
    company_id: uuid.UUID
    company_country: str = "ZZ"
    document_id: str = ""
    kind: str = "business"  # business, response, mls, mlr, report
    pending: bool = False  # held out of the mailbox until the inbound processor checked it
    processing: bool = False  # the inbound processor has work to do (validation, MLS, linking)
    mls_to: str | None = None
    mls_type: str | None = None
    trace_context: str | None = None


async def find_inbound_receipt(
    conn: asyncpg.Connection | asyncpg.Pool, as4_message_id: str, sending_ap: str
) -> bytes | None:
    """The receipt sent for a message seen before; empty when it was archived, None if unseen."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT coalesce(receipt, ''::bytea) FROM inbound_messages WHERE as4_message_id = $1 AND sending_ap = $2",
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
    counts_tsr, counts_eusr = reporting_counts(record.kind)
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
                       company_id, document_id, kind, status, processing, mls_to, mls_type)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,
                           $23, $24, CASE WHEN $25 THEN 'pending' ELSE 'stored' END,
                           CASE WHEN $26 THEN 'pending' ELSE 'done' END, $27, $28)
                   RETURNING id),
               box AS (
                   INSERT INTO mailbox_entries (company_id, message_id) SELECT $19, id FROM msg WHERE NOT $25),
               exchange AS (
                   INSERT INTO exchanges (direction, source_id, exchanged_at, other_sp, document_type, process,
                                          country_c1, country_c4, company_id, end_user_country, counts_for_eusr)
                   SELECT 'in', id, $16, $2, $9, $10, $11, $29, $19, $29, $31 FROM msg WHERE $30)
               INSERT INTO events (company_id, kind, payload, trace_context)
               SELECT $19, 'document.received', jsonb_set($22::jsonb, '{message_id}', to_jsonb(id)), $32
               FROM msg WHERE NOT $25""",
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
            record.document_id,
            record.kind,
            record.pending,
            record.processing,
            record.mls_to,
            record.mls_type,
            record.company_country,
            counts_tsr,
            counts_eusr,
            record.trace_context,
        )
    except asyncpg.UniqueViolationError:
        first = await find_inbound_receipt(pool, record.as4_message_id, record.sending_ap)
        return False, first or receipt
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
    document_id: str | None = None
    kind: str = "business"
    answers_inbound_id: int | None = None
    validation: str | None = None  # JSON of the warnings recorded when sent anyway
    trace_context: str | None = None  # W3C traceparent of the submitting span


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
    kind: str = "business"
    company_id: uuid.UUID | None = None
    trace_context: str | None = None


def reporting_counts(kind: str) -> tuple[bool, bool]:
    """Whether an exchange of this kind counts for (TSR, EUSR): the reports themselves count
    for neither, an MLS for the TSR only."""
    return kind != "report", kind not in ("report", "mls")


async def submit_outbound(pool: asyncpg.Pool | asyncpg.Connection, submission: OutboundSubmission) -> int:
    """Store the document and its outbound job (and the first audit line) in one transaction."""
    job_id = await pool.fetchval(
        """WITH doc AS (
               INSERT INTO documents (sha256, size_bytes, content) VALUES ($8, $15, $16)
               ON CONFLICT (sha256) DO NOTHING),
           job AS (
               INSERT INTO outbound_messages (
                   company_id, sender, receiver, document_type, process, country_c1,
                   instance_identifier, document_sha256, as4_message_id, conversation_id, give_up_at,
                   endpoint_url, endpoint_cert, fixed_endpoint, document_id, kind, answers_inbound_id,
                   validation, trace_context)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$17,$18,$19,$20::jsonb,$21) RETURNING id),
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
        submission.document_id,
        submission.kind,
        submission.answers_inbound_id,
        submission.validation,
        submission.trace_context,
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
                  c.created_at, c.endpoint_url, c.endpoint_cert, c.fixed_endpoint, c.kind, c.company_id,
                  c.trace_context
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
    exchanged_at: datetime | None = None,
    trace_context: str | None = None,
) -> None:
    """Record an outcome (delivered, retrying, failed), its audit line and, when final, the
    event for the company, in one statement. A delivery with ``exchanged_at`` (the AS4
    timestamp) is also recorded for the monthly reports, unless it was a report itself."""
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
               RETURNING id, company_id, kind, document_type, process, country_c1, receiver_ap),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason) SELECT id, $2, $5 FROM upd),
           exchange AS (
               INSERT INTO exchanges (direction, source_id, exchanged_at, other_sp, document_type, process,
                                      country_c1, company_id, end_user_country, counts_for_eusr)
               SELECT 'out', u.id, $13, u.receiver_ap, u.document_type, u.process, u.country_c1, u.company_id,
                      c.country, u.kind NOT IN ('mls', 'report')
               FROM upd u LEFT JOIN companies c ON c.id = u.company_id
               WHERE $2 = 'delivered' AND $13::timestamptz IS NOT NULL AND u.kind <> 'report'
                 AND u.receiver_ap IS NOT NULL
               ON CONFLICT (direction, source_id) DO NOTHING)
        INSERT INTO events (company_id, kind, payload, trace_context)
        SELECT company_id, $10, $11::jsonb, $14 FROM upd WHERE $2 IN ('delivered', 'failed')""",
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
        exchanged_at,
        trace_context,
    )


async def release_outbound(pool: asyncpg.Pool, job_id: int, reason: str) -> None:
    """Give a claimed job back to the queue at once (its worker is stopping)."""
    await pool.execute(
        """WITH upd AS (
               UPDATE outbound_messages SET state = 'retrying', locked_until = NULL, next_attempt_at = now(),
                                            updated_at = now()
               WHERE id = $1 AND state = 'sending' RETURNING id)
           INSERT INTO outbound_audit (outbound_id, state, reason) SELECT id, 'retrying', $2 FROM upd""",
        job_id,
        reason,
    )


async def defer_outbound(pool: asyncpg.Pool, job_id: int, until: datetime, reason: str, *, audit: bool) -> None:
    """Put a claimed job back without counting the attempt: its endpoint's circuit is open or
    the endpoint is at its concurrency limit."""
    await pool.execute(
        """WITH upd AS (
               UPDATE outbound_messages SET state = 'retrying', attempts = greatest(attempts - 1, 0),
                   locked_until = NULL, next_attempt_at = $2, updated_at = now()
               WHERE id = $1 AND state = 'sending' RETURNING id)
           INSERT INTO outbound_audit (outbound_id, state, reason) SELECT id, 'waiting', $3 FROM upd WHERE $4""",
        job_id,
        until,
        reason,
        audit,
    )


async def record_circuit(pool: asyncpg.Pool, url: str, state: str, failures: int, cooldown: float) -> None:
    await pool.execute(
        """INSERT INTO endpoint_circuits (url, state, failures, cooldown) VALUES ($1, $2, $3, $4)
           ON CONFLICT (url) DO UPDATE SET state = $2, failures = $3, cooldown = $4, updated_at = now()""",
        url,
        state,
        failures,
        cooldown,
    )


async def list_circuits(pool: asyncpg.Pool) -> list[Any]:
    return await pool.fetch(  # type: ignore[no-any-return]
        """SELECT c.*, (SELECT count(*) FROM outbound_messages o
                        WHERE o.endpoint_url = c.url AND o.state IN ('queued', 'retrying', 'sending')) AS waiting
           FROM endpoint_circuits c ORDER BY c.url"""
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


# -- after the receipt: the inbound processor ---------------------------------------------------


@dataclass(frozen=True)
class PendingInbound:
    id: int
    company_id: uuid.UUID
    inbound_validation: str
    status: str
    kind: str
    sending_ap: str
    sender: str  # scheme::value
    receiver: str
    instance_identifier: str
    document_id: str | None
    mls_to: str | None
    mls_type: str | None
    sbd: bytes


async def claim_inbound_processing(pool: asyncpg.Pool, lease_seconds: float = 300.0) -> PendingInbound | None:
    """Take the next received message with work after its receipt; a claim whose worker died is
    taken again after the lease."""
    row = await pool.fetchrow(
        """WITH claimed AS (
               UPDATE inbound_messages m SET processing_until = now() + make_interval(secs => $1)
               WHERE m.id = (SELECT id FROM inbound_messages
                             WHERE processing = 'pending' AND (processing_until IS NULL OR processing_until < now())
                             ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
               RETURNING m.*)
           SELECT c.id, c.company_id, co.inbound_validation, c.status, c.kind, c.sending_ap,
                  c.sender_scheme || '::' || c.sender_value AS sender,
                  c.receiver_scheme || '::' || c.receiver_value AS receiver,
                  c.instance_identifier, c.document_id, c.mls_to, c.mls_type, d.content AS sbd
           FROM claimed c JOIN documents d ON d.sha256 = c.document_sha256
           JOIN companies co ON co.id = c.company_id""",
        lease_seconds,
    )
    return None if row is None else PendingInbound(**dict(row))


@dataclass(frozen=True)
class InboundOutcome:
    accepted: bool
    validation: str | None  # JSON
    mls_code: str | None
    answers_outbound_id: int | None


async def finish_inbound_processing(conn: asyncpg.Connection, message: PendingInbound, outcome: InboundOutcome) -> bool:
    """Record the outcome; a message held out of the mailbox enters it now if accepted. False
    when another worker finished it first (the caller's transaction must then roll back)."""
    status = await conn.fetchval(
        """UPDATE inbound_messages SET processing = 'done', processing_until = NULL,
               status = CASE WHEN $2 THEN 'stored' ELSE 'rejected' END,
               validation = $3::jsonb, mls_code = $4, answers_outbound_id = $5
           WHERE id = $1 AND processing = 'pending'
           RETURNING (SELECT status FROM inbound_messages WHERE id = $1)""",
        message.id,
        outcome.accepted,
        outcome.validation,
        outcome.mls_code,
        outcome.answers_outbound_id,
    )
    if status is None:
        return False
    if status == "pending" and outcome.accepted:
        await conn.execute(
            """WITH box AS (
                   INSERT INTO mailbox_entries (company_id, message_id) VALUES ($1, $2)
                   ON CONFLICT (company_id, message_id) DO NOTHING RETURNING message_id)
               INSERT INTO events (company_id, kind, payload)
               SELECT $1, 'document.received', jsonb_build_object(
                   'message_id', m.id, 'as4_message_id', m.as4_message_id,
                   'sender', m.sender_scheme || '::' || m.sender_value,
                   'receiver', m.receiver_scheme || '::' || m.receiver_value,
                   'document_type', m.document_type, 'process', m.process)
               FROM box JOIN inbound_messages m ON m.id = box.message_id""",
            message.company_id,
            message.id,
        )
    return True


async def set_inbound_mls(conn: asyncpg.Connection, inbound_id: int, outbound_id: int) -> None:
    await conn.execute("UPDATE inbound_messages SET mls_outbound_id = $2 WHERE id = $1", inbound_id, outbound_id)


async def link_mls(
    conn: asyncpg.Connection, instance_identifier: str, from_spid_digits: str, code: str, reason: str, inbound_id: int
) -> int | None:
    """Attach a received MLS to the document we sent with that envelope instance id (to the
    access point that sent the MLS); records an audit line and the company's event."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        """WITH target AS (
               SELECT id, company_id FROM outbound_messages
               WHERE instance_identifier = $1 AND kind <> 'mls' AND right(coalesce(receiver_ap, ''), 6) = $2
               ORDER BY id DESC LIMIT 1),
           upd AS (
               UPDATE outbound_messages o SET mls_code = $3, mls_reason = $4, mls_at = now(), updated_at = now()
               FROM target t WHERE o.id = t.id RETURNING o.id, o.company_id),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, CASE WHEN $3 = 'RE' THEN 'rejected' ELSE 'accepted' END,
                      'Message Level Status ' || $3 || CASE WHEN $4 = '' THEN '' ELSE ': ' || $4 END FROM upd),
           event AS (
               INSERT INTO events (company_id, kind, payload)
               SELECT company_id, CASE WHEN $3 = 'RE' THEN 'document.rejected' ELSE 'document.accepted' END,
                      jsonb_build_object('outbound_id', id, 'mls_code', $3, 'reason', $4, 'mls_message_id', $5::bigint)
               FROM upd)
           SELECT id FROM upd""",
        instance_identifier,
        from_spid_digits,
        code,
        reason,
        inbound_id,
    )


async def link_response(
    conn: asyncpg.Connection,
    company_id: uuid.UUID,
    responder: str,
    references: tuple[str, ...],
    code: str,
    inbound_id: int,
) -> int | None:
    """Attach a received business response (invoice or order response, MLR) to the document this
    company sent to the responder that it references (by document id or envelope instance id)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        """WITH target AS (
               SELECT id FROM outbound_messages
               WHERE company_id = $1 AND lower(receiver) = lower($2)
                 AND (document_id = ANY($3::text[]) OR instance_identifier = ANY($3::text[]))
                 AND kind IN ('business', 'response')
               ORDER BY id DESC LIMIT 1),
           upd AS (
               UPDATE outbound_messages o SET response_code = $4, response_inbound_id = $5, updated_at = now()
               FROM target t WHERE o.id = t.id RETURNING o.id),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, 'answered', 'response ' || $4 || ' received' FROM upd),
           event AS (
               INSERT INTO events (company_id, kind, payload)
               SELECT $1, 'document.response_received',
                      jsonb_build_object('outbound_id', id, 'response_code', $4, 'message_id', $5::bigint)
               FROM upd)
           SELECT id FROM upd""",
        company_id,
        responder,
        list(references),
        code,
        inbound_id,
    )


# -- Peppol Reporting -------------------------------------------------------------------------------


async def month_exchange_counts(pool: asyncpg.Pool, start: datetime, end: datetime) -> list[Any]:
    """Exchanges in [start, end) grouped by every TSR key (a few rows, however many messages)."""
    return await pool.fetch(  # type: ignore[no-any-return]
        """SELECT direction, other_sp, document_type, process, transport_profile, country_c1, country_c4,
                  count(*) AS count
           FROM exchanges WHERE exchanged_at >= $1 AND exchanged_at < $2
           GROUP BY 1, 2, 3, 4, 5, 6, 7""",
        start,
        end,
    )


async def month_end_users(pool: asyncpg.Pool, start: datetime, end: datetime) -> list[Any]:
    """Which end users (companies) were active in [start, end), per direction, document type,
    process and country: the EUSR counts distinct end users, never messages."""
    return await pool.fetch(  # type: ignore[no-any-return]
        """SELECT DISTINCT company_id::text AS end_user, direction, document_type, process,
                  coalesce(end_user_country, 'ZZ') AS country
           FROM exchanges
           WHERE exchanged_at >= $1 AND exchanged_at < $2 AND counts_for_eusr AND company_id IS NOT NULL""",
        start,
        end,
    )


async def save_report(
    pool: asyncpg.Pool, kind: str, start: Any, end: Any, content: bytes, valid: bool, validation: str
) -> int | None:
    """Store a built report; a report already sent for that month is kept (returns None)."""
    return await pool.fetchval(  # type: ignore[no-any-return]
        """INSERT INTO reports (kind, period_start, period_end, content, valid, validation)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb)
           ON CONFLICT (kind, period_start) DO UPDATE
               SET content = EXCLUDED.content, valid = EXCLUDED.valid, validation = EXCLUDED.validation,
                   updated_at = now()
               WHERE reports.outbound_id IS NULL
           RETURNING id""",
        kind,
        start,
        end,
        content,
        valid,
        validation,
    )


async def report_row(pool: asyncpg.Pool, kind: str, start: Any) -> Any:
    """A month's report with the state of its delivery (NULL before it is sent)."""
    return await pool.fetchrow(
        """SELECT r.*, o.state AS outbound_state, o.last_error FROM reports r
           LEFT JOIN outbound_messages o ON o.id = r.outbound_id
           WHERE r.kind = $1 AND r.period_start = $2""",
        kind,
        start,
    )


async def release_failed_report(pool: asyncpg.Pool, report_id: int) -> None:
    """Forget a delivery that failed, so the report is built and sent again."""
    await pool.execute("UPDATE reports SET outbound_id = NULL, updated_at = now() WHERE id = $1", report_id)


async def set_report_sent(pool: asyncpg.Pool, report_id: int, outbound_id: int) -> None:
    await pool.execute("UPDATE reports SET outbound_id = $2, updated_at = now() WHERE id = $1", report_id, outbound_id)


async def list_reports(pool: asyncpg.Pool, limit: int = 48) -> list[Any]:
    return await pool.fetch(  # type: ignore[no-any-return]
        """SELECT r.id, r.kind, r.period_start, r.period_end, r.valid, r.validation, r.outbound_id,
                  r.created_at, r.updated_at, o.state AS outbound_state, o.delivered_at, o.last_error,
                  o.receipt IS NOT NULL AS has_receipt
           FROM reports r LEFT JOIN outbound_messages o ON o.id = r.outbound_id
           ORDER BY r.period_start DESC, r.kind LIMIT $1""",
        limit,
    )


async def add_operator_event(pool: asyncpg.Pool, kind: str, payload: str) -> None:
    """An event for every operator of this gateway (it concerns no company)."""
    await pool.execute("INSERT INTO events (company_id, kind, payload) VALUES (NULL, $1, $2::jsonb)", kind, payload)


# -- archival ---------------------------------------------------------------------------------------


async def inbound_to_archive(pool: asyncpg.Pool, cutoff: datetime, limit: int) -> list[Any]:
    """Received messages older than ``cutoff`` whose processing is done, with their content."""
    return await pool.fetch(  # type: ignore[no-any-return]
        """SELECT m.*, d.content AS document, e.content AS message
           FROM inbound_messages m
           JOIN documents d ON d.sha256 = m.document_sha256
           LEFT JOIN documents e ON e.sha256 = m.message_sha256
           WHERE m.archived_at IS NULL AND m.processing = 'done' AND m.received_at < $1
           ORDER BY m.received_at LIMIT $2""",
        cutoff,
        limit,
    )


async def outbound_to_archive(pool: asyncpg.Pool, cutoff: datetime, limit: int) -> list[Any]:
    """Sent documents that ended (delivered or failed) before ``cutoff``, with their content."""
    return await pool.fetch(  # type: ignore[no-any-return]
        """SELECT o.*, d.content AS document, s.content AS message,
                  (SELECT coalesce(json_agg(json_build_object('at', a.at, 'state', a.state, 'reason', a.reason)
                                            ORDER BY a.id), '[]'::json)
                   FROM outbound_audit a WHERE a.outbound_id = o.id) AS audit
           FROM outbound_messages o
           JOIN documents d ON d.sha256 = o.document_sha256
           LEFT JOIN documents s ON s.sha256 = o.sent_message_sha256
           WHERE o.archived_at IS NULL AND o.state IN ('delivered', 'failed') AND o.updated_at < $1
           ORDER BY o.updated_at LIMIT $2""",
        cutoff,
        limit,
    )


async def mark_archived(conn: asyncpg.Connection, direction: str, row_id: int, key: str) -> None:
    """The message now lives in the archive: keep its metadata, drop its receipt here."""
    table = "inbound_messages" if direction == "in" else "outbound_messages"
    await conn.execute(
        f"UPDATE {table} SET archived_at = now(), archive_key = $2, receipt = NULL WHERE id = $1",  # noqa: S608
        row_id,
        key,
    )


async def release_documents(conn: asyncpg.Connection, digests: list[bytes]) -> int:
    """Empty stored documents no message outside the archive still uses."""
    result = await conn.execute(
        """UPDATE documents d SET content = NULL
           WHERE d.sha256 = ANY($1::bytea[]) AND d.content IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM inbound_messages m WHERE m.archived_at IS NULL
                             AND (m.document_sha256 = d.sha256 OR m.message_sha256 = d.sha256))
             AND NOT EXISTS (SELECT 1 FROM outbound_messages o WHERE o.archived_at IS NULL
                             AND (o.document_sha256 = d.sha256 OR o.sent_message_sha256 = d.sha256))""",
        digests,
    )
    return int(result.split()[-1])


async def archived_before(pool: asyncpg.Pool, cutoff: datetime, limit: int) -> list[Any]:
    """Archived exchanges past their retention: (direction, id, key)."""
    return await pool.fetch(  # type: ignore[no-any-return]
        """(SELECT 'in' AS direction, id, archive_key FROM inbound_messages
            WHERE archived_at IS NOT NULL AND received_at < $1 LIMIT $2)
           UNION ALL
           (SELECT 'out', id, archive_key FROM outbound_messages
            WHERE archived_at IS NOT NULL AND created_at < $1 LIMIT $2)""",
        cutoff,
        limit,
    )


async def forget_exchange(conn: asyncpg.Connection, direction: str, row_id: int) -> None:
    """Remove an exchange whose retention ended (its archive entry is deleted by the caller)."""
    if direction == "in":
        await conn.execute(
            "UPDATE outbound_messages SET answers_inbound_id = NULL WHERE answers_inbound_id = $1", row_id
        )
        await conn.execute(
            "UPDATE outbound_messages SET response_inbound_id = NULL WHERE response_inbound_id = $1", row_id
        )
        await conn.execute("DELETE FROM inbound_messages WHERE id = $1", row_id)
    else:
        for column in ("mls_outbound_id", "answers_outbound_id", "response_outbound_id"):
            await conn.execute(
                f"UPDATE inbound_messages SET {column} = NULL WHERE {column} = $1",  # noqa: S608
                row_id,
            )
        await conn.execute("UPDATE reports SET outbound_id = NULL WHERE outbound_id = $1", row_id)
        await conn.execute("DELETE FROM outbound_messages WHERE id = $1", row_id)
