"""The outbound domain's SQL, behind typed functions.

States are bound as parameters from :class:`~gateway.outbound.states.OutboundState`; every
statement is a named constant next to the function that runs it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

from gateway.documents.queries import StoredRef, sha256
from gateway.outbound.states import IN_FLIGHT, WAITING, OutboundState

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
_QUEUED, _SENDING, _RETRYING = OutboundState.QUEUED, OutboundState.SENDING, OutboundState.RETRYING
_DELIVERED, _FAILED = OutboundState.DELIVERED, OutboundState.FAILED


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
    business_key: bytes | None = None  # hash of what identifies the document, for resubmissions


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


_SUBMIT = """
    WITH doc AS (
               INSERT INTO documents (sha256, size_bytes, content) VALUES ($8, $15, $16)
               ON CONFLICT (sha256) DO NOTHING),
           job AS (
               INSERT INTO outbound_messages (
                   company_id, sender, receiver, document_type, process, country_c1,
                   instance_identifier, document_sha256, as4_message_id, conversation_id, give_up_at,
                   endpoint_url, endpoint_cert, fixed_endpoint, document_id, kind, answers_inbound_id,
                   validation, trace_context, business_key)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$17,$18,$19,$20::jsonb,$21,$23)
               RETURNING id),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, $22, 'submitted' FROM job)
           SELECT id FROM job"""


async def submit_outbound(pool: Db, submission: OutboundSubmission) -> int:
    """Store the document and its outbound job (and the first audit line) in one transaction."""
    job_id = await pool.fetchval(
        _SUBMIT,
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
        _QUEUED,
        submission.business_key,
    )
    return int(job_id)


# A transaction-scoped advisory lock per business key (its first 8 bytes as the lock's number):
# two submissions of one document queue one after the other, the second sees the first's job.
_LOCK_BUSINESS_KEY = """
    SELECT pg_advisory_xact_lock(('x' || encode(substring($1::bytea FROM 1 FOR 8), 'hex'))::bit(64)::bigint)"""
_EARLIER_SUBMISSION = """
    SELECT id FROM outbound_messages
    WHERE business_key = $1 AND created_at >= $2 AND state <> $3
    ORDER BY id LIMIT 1"""


async def earlier_submission(conn: asyncpg.Connection, business_key: bytes, since: datetime) -> int | None:
    """The job of the same document submitted since ``since`` and not failed, if any. Takes the
    business key's lock first (held to the end of the caller's transaction), so of two concurrent
    submissions of one document the second finds the first."""
    await conn.execute(_LOCK_BUSINESS_KEY, business_key)
    job_id = await conn.fetchval(_EARLIER_SUBMISSION, business_key, since, _FAILED)
    return None if job_id is None else int(job_id)


_CLAIM = """
    WITH claimed AS (
               UPDATE outbound_messages o
               SET state = $3, attempts = o.attempts + 1, updated_at = now(),
                   locked_until = now() + make_interval(secs => $1)
               WHERE o.id = (
                   SELECT id FROM outbound_messages
                   WHERE ((state IN ($4, $5) AND next_attempt_at <= now())
                          OR (state = $3 AND locked_until < now()))
                     AND ($2::bigint IS NULL OR id = $2)
                   ORDER BY next_attempt_at
                   FOR UPDATE SKIP LOCKED
                   LIMIT 1)
               RETURNING o.*),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, $3, 'attempt ' || attempts FROM claimed)
           SELECT c.id, c.sender, c.receiver, c.document_type, c.process, c.country_c1,
                  d.content AS sbd, c.as4_message_id, c.conversation_id, c.attempts, c.give_up_at,
                  c.created_at, c.endpoint_url, c.endpoint_cert, c.fixed_endpoint, c.kind, c.company_id,
                  c.trace_context
           FROM claimed c JOIN documents d ON d.sha256 = c.document_sha256"""


async def claim_outbound(
    pool: asyncpg.Pool, lease_seconds: float = 300.0, job_id: int | None = None
) -> OutboundJob | None:
    """Take the next due job, if any. ``FOR UPDATE SKIP LOCKED`` lets many workers in many
    processes share the queue; a job whose worker died is taken again after its lease."""
    row = await pool.fetchrow(_CLAIM, lease_seconds, job_id, _SENDING, _QUEUED, _RETRYING)
    if row is None:
        return None
    return OutboundJob(**dict(row))


_MARK = """
    WITH doc AS (
               INSERT INTO documents (sha256, size_bytes, content)
               SELECT $7, length($12::bytea), $12 WHERE $12::bytea IS NOT NULL
               ON CONFLICT (sha256) DO NOTHING),
           upd AS (
               UPDATE outbound_messages SET
                   state = $2, updated_at = now(), locked_until = NULL,
                   next_attempt_at = COALESCE($3, next_attempt_at),
                   error_code = $4, last_error = CASE WHEN $2 = $15 THEN NULL ELSE $5 END,
                   receipt = COALESCE($6, receipt),
                   sent_message_sha256 = COALESCE($7, sent_message_sha256),
                   endpoint_url = COALESCE($8, endpoint_url),
                   receiver_ap = COALESCE($9, receiver_ap),
                   delivered_at = CASE WHEN $2 = $15 THEN now() ELSE delivered_at END
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
               WHERE $2 = $15 AND $13::timestamptz IS NOT NULL AND u.kind <> 'report'
                 AND u.receiver_ap IS NOT NULL
               ON CONFLICT (direction, source_id) DO NOTHING)
        INSERT INTO events (company_id, kind, payload, trace_context)
        SELECT company_id, $10, $11::jsonb, $14 FROM upd WHERE $2 IN ($15, $16)"""


async def mark_outbound(
    pool: asyncpg.Pool,
    job_id: int,
    state: OutboundState,
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
        _MARK,
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
        _DELIVERED,
        _FAILED,
    )


_RELEASE = """
    WITH upd AS (
               UPDATE outbound_messages SET state = $3, locked_until = NULL, next_attempt_at = now(),
                                            updated_at = now()
               WHERE id = $1 AND state = $4 RETURNING id)
           INSERT INTO outbound_audit (outbound_id, state, reason) SELECT id, $3, $2 FROM upd"""


async def release_outbound(pool: asyncpg.Pool, job_id: int, reason: str) -> None:
    """Give a claimed job back to the queue at once (its worker is stopping)."""
    await pool.execute(_RELEASE, job_id, reason, _RETRYING, _SENDING)


_DEFER = """
    WITH upd AS (
               UPDATE outbound_messages SET state = $5, attempts = greatest(attempts - 1, 0),
                   locked_until = NULL, next_attempt_at = $2, updated_at = now()
               WHERE id = $1 AND state = $6 RETURNING id)
           INSERT INTO outbound_audit (outbound_id, state, reason) SELECT id, $7, $3 FROM upd WHERE $4"""


async def defer_outbound(pool: asyncpg.Pool, job_id: int, until: datetime, reason: str, *, audit: bool) -> None:
    """Put a claimed job back without counting the attempt: its endpoint's circuit is open or
    the endpoint is at its concurrency limit."""
    await pool.execute(_DEFER, job_id, until, reason, audit, _RETRYING, _SENDING, WAITING)


_RECORD_CIRCUIT = """
    INSERT INTO endpoint_circuits (url, state, failures, cooldown) VALUES ($1, $2, $3, $4)
    ON CONFLICT (url) DO UPDATE SET state = $2, failures = $3, cooldown = $4, updated_at = now()"""


async def record_circuit(pool: asyncpg.Pool, url: str, state: str, failures: int, cooldown: float) -> None:
    """Keep an endpoint's circuit state for operators (the guard itself lives in memory)."""
    await pool.execute(_RECORD_CIRCUIT, url, state, failures, cooldown)


@dataclass(frozen=True)
class CircuitRow:
    """An endpoint's last recorded circuit and how many jobs for it are still in the queue."""

    url: str
    state: str  # closed, open, half_open (the circuit's, not a job's)
    failures: int
    cooldown: float
    updated_at: datetime
    waiting: int


_LIST_CIRCUITS = """
    SELECT c.url, c.state, c.failures, c.cooldown, c.updated_at,
           (SELECT count(*) FROM outbound_messages o
            WHERE o.endpoint_url = c.url AND o.state = ANY($1::text[])) AS waiting
    FROM endpoint_circuits c ORDER BY c.url"""


async def list_circuits(pool: asyncpg.Pool) -> list[CircuitRow]:
    rows = await pool.fetch(_LIST_CIRCUITS, list(IN_FLIGHT))
    return [CircuitRow(**dict(r)) for r in rows]


@dataclass(frozen=True)
class OutboundStatus:
    id: int
    state: OutboundState
    attempts: int
    error_code: str | None
    last_error: str | None
    next_attempt_at: datetime
    audit: list[tuple[datetime, str, str]]


_STATUS = "SELECT id, state, attempts, error_code, last_error, next_attempt_at FROM outbound_messages WHERE id = $1"
_AUDIT = "SELECT at, state, reason FROM outbound_audit WHERE outbound_id = $1 ORDER BY id"


async def outbound_status(conn: Db, job_id: int) -> OutboundStatus | None:
    row = await conn.fetchrow(_STATUS, job_id)
    if row is None:
        return None
    audit = await conn.fetch(_AUDIT, job_id)
    return OutboundStatus(
        id=row["id"], state=OutboundState(row["state"]), attempts=row["attempts"], error_code=row["error_code"],
        last_error=row["last_error"], next_attempt_at=row["next_attempt_at"],
        audit=[(a["at"], a["state"], a["reason"]) for a in audit],
    )  # fmt: skip


# -- sent documents, as the API reads them ----------------------------------------------------------


@dataclass(frozen=True)
class SentDocument:
    """A document a company sent, with what answered it (entries in its mailbox)."""

    id: int
    kind: str
    state: OutboundState
    sender: str
    receiver: str
    document_type: str
    process: str
    as4_message_id: str
    attempts: int
    error_code: str | None
    last_error: str | None
    validation: str | None  # JSON: the findings recorded when it was sent anyway
    mls_code: str | None
    mls_reason: str | None
    mls_at: datetime | None
    response_code: str | None
    response_entry_id: int | None
    answers_entry_id: int | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


_SENT_SELECT = """
    SELECT o.id, o.kind, o.state, o.sender, o.receiver, o.document_type, o.process, o.as4_message_id,
           o.attempts, o.error_code, o.last_error, o.validation, o.mls_code, o.mls_reason, o.mls_at,
           o.response_code,
           (SELECT e.id FROM mailbox_entries e
            WHERE e.message_id = o.response_inbound_id AND e.company_id = o.company_id) AS response_entry_id,
           (SELECT e.id FROM mailbox_entries e
            WHERE e.message_id = o.answers_inbound_id AND e.company_id = o.company_id) AS answers_entry_id,
           o.created_at, o.updated_at, o.delivered_at
    FROM outbound_messages o"""
_SENT_ONE = _SENT_SELECT + " WHERE o.id = $1 AND o.company_id = $2"
_SENT_PAGE = (
    _SENT_SELECT
    + """ WHERE o.company_id = $1 AND ($2::bigint IS NULL OR o.id < $2)
         AND ($3::timestamptz IS NULL OR o.created_at >= $3) AND ($4::timestamptz IS NULL OR o.created_at < $4)
         AND o.document_type LIKE ANY($5::text[]) AND ($6::text IS NULL OR o.document_type = $6)
         AND ($7::text IS NULL OR o.state = $7)
       ORDER BY o.id DESC LIMIT $8"""
)


def _sent(row: asyncpg.Record) -> SentDocument:
    fields = dict(row)
    fields["state"] = OutboundState(fields["state"])
    return SentDocument(**fields)


async def sent_document(pool: Db, company_id: uuid.UUID, job_id: int) -> SentDocument | None:
    row = await pool.fetchrow(_SENT_ONE, job_id, company_id)
    return None if row is None else _sent(row)


async def list_sent(
    pool: Db,
    company_id: uuid.UUID,
    *,
    before: int | None,
    start: datetime | None,
    end: datetime | None,
    document_types: list[str],
    document_type: str | None,
    state: str | None,
    limit: int,
) -> list[SentDocument]:
    """Newest first, ids below ``before``; ``document_types`` are LIKE patterns, ``state`` a job state."""
    rows = await pool.fetch(_SENT_PAGE, company_id, before, start, end, document_types, document_type, state, limit)
    return [_sent(r) for r in rows]


_SENT_REF = "SELECT document_sha256, archive_key FROM outbound_messages WHERE id = $1 AND company_id = $2"


async def sent_ref(pool: Db, company_id: uuid.UUID, job_id: int) -> StoredRef | None:
    """Where a sent document's envelope is stored."""
    row = await pool.fetchrow(_SENT_REF, job_id, company_id)
    return None if row is None else StoredRef(bytes(row["document_sha256"]), row["archive_key"])


@dataclass(frozen=True)
class CompanyUsage:
    id: uuid.UUID
    name: str
    sent: int
    delivered: int
    received: int


_USAGE = """
    SELECT c.id, c.name,
           (SELECT count(*) FROM outbound_messages o WHERE o.company_id = c.id AND o.created_at >= $2) AS sent,
           (SELECT count(*) FROM outbound_messages o WHERE o.company_id = c.id AND o.created_at >= $2
                AND o.state = $3) AS delivered,
           (SELECT count(*) FROM mailbox_entries e WHERE e.company_id = c.id AND e.created_at >= $2) AS received
    FROM companies c WHERE c.id = ANY($1::uuid[]) ORDER BY c.name"""


async def company_usage(pool: Db, companies: list[uuid.UUID | None], since: datetime) -> list[CompanyUsage]:
    """Documents each company sent, had delivered and received since ``since``."""
    rows = await pool.fetch(_USAGE, companies, since, _DELIVERED)
    return [CompanyUsage(**dict(r)) for r in rows]
