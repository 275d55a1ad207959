"""The outbound domain's SQL, behind typed functions.

States are bound as parameters from :class:`~gateway.outbound.states.OutboundState`; every
statement is a named constant next to the function that runs it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias

import asyncpg

from gateway.documents.content import ContentRow
from gateway.documents.queries import ContentFilter, StoredRef, put_spooled_document, sha256
from gateway.documents.spool import LARGE_DOCUMENT_BYTES, Spool
from gateway.outbound.states import IN_FLIGHT, WAITING, CircuitState, OutboundState

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
_QUEUED, _SENDING, _RETRYING = OutboundState.QUEUED, OutboundState.SENDING, OutboundState.RETRYING
_DELIVERED, _FAILED = OutboundState.DELIVERED, OutboundState.FAILED


@dataclass(frozen=True)
class Fallback:
    """Another receiver for a message, with the message as addressed to it (its own SBD)."""

    receiver: str
    sbd: bytes
    instance_identifier: str


@dataclass(frozen=True)
class OutboundSubmission:
    sender: str
    receiver: str
    document_type: str
    process: str
    country_c1: str
    instance_identifier: str
    sbd: bytes | Spool  # a spool file for a large document, streamed in with COPY
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
    mls_type: str | None = None  # what the envelope asks of the receiver (None: absent)
    fallback: Fallback | None = None  # where the message goes when its receiver cannot be reached
    content: ContentRow | None = None  # the document's content view, kept with it


@dataclass(frozen=True)
class OutboundJob:
    id: int
    sender: str
    receiver: str
    document_type: str
    process: str
    country_c1: str
    sbd: bytes | None  # None for a large document: read it with spool_document(document_sha256)
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
    claim: uuid.UUID | None = None  # the token of this claim: outcomes apply only while it holds
    fallback_receiver: str | None = None
    document_sha256: bytes = b""
    sbd_size: int = 0


def reporting_counts(kind: str) -> tuple[bool, bool]:
    """Whether an exchange of this kind counts for (TSR, EUSR): the reports themselves count
    for neither, an MLS for the TSR only."""
    return kind != "report", kind not in ("report", "mls")


# One statement stores a submission: its document (and its fallback's), the job, the first audit
# line, the content view, and the wake-up of the workers (sent at commit). With $39 (a time) it
# first looks for the same document (business key $23) submitted since then and not failed, and
# stores nothing when it finds one (the caller holds the business key's lock). It answers the
# job as the API shows it, or the earlier job.
_SUBMIT = """
    WITH earlier AS (
               SELECT id FROM outbound_messages
               WHERE $39::timestamptz IS NOT NULL AND business_key = $23 AND created_at >= $39 AND state <> $40
               ORDER BY id LIMIT 1),
           doc AS (
               INSERT INTO documents (sha256, size_bytes, content)
               SELECT $8, $15, $16 WHERE NOT EXISTS (SELECT FROM earlier)
               ON CONFLICT (sha256) DO NOTHING),
           fallback_doc AS (
               INSERT INTO documents (sha256, size_bytes, content)
               SELECT $26, length($27::bytea), $27 WHERE $27::bytea IS NOT NULL AND NOT EXISTS (SELECT FROM earlier)
               ON CONFLICT (sha256) DO NOTHING),
           job AS (
               INSERT INTO outbound_messages (
                   company_id, sender, receiver, document_type, process, country_c1,
                   instance_identifier, document_sha256, as4_message_id, conversation_id, give_up_at,
                   endpoint_url, endpoint_cert, fixed_endpoint, document_id, kind, answers_inbound_id,
                   validation, trace_context, business_key, mls_type, fallback_receiver, fallback_sha256,
                   fallback_instance)
               SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$17,$18,$19,$20::jsonb,$21,$23,$24,$25,$26,$28
               WHERE NOT EXISTS (SELECT FROM earlier)
               RETURNING id, kind, state, sender, receiver, document_type, process, as4_message_id, attempts,
                         error_code, last_error, validation, mls_code, mls_reason, mls_at, mls_flagged,
                         response_code, answers_inbound_id, company_id, created_at, updated_at, delivered_at),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, $22, 'submitted' FROM job),
           contents AS (
               INSERT INTO document_contents (outbound_id, view_version, number, issue_date, due_date, seller_name,
                                              buyer_name, payable_amount, currency, content)
               SELECT id, $29::integer, $30::text, $31::date, $32::date, $33::text, $34::text, $35::numeric,
                      $36::text, $37::jsonb
               FROM job WHERE $29::integer IS NOT NULL
               RETURNING number, issue_date, due_date, seller_name, buyer_name, payable_amount, currency),
           wake AS (
               SELECT pg_notify($38, '') FROM job WHERE $38::text IS NOT NULL)
           SELECT e.id AS earlier, j.id, j.kind, j.state, j.sender, j.receiver, j.document_type, j.process,
                  j.as4_message_id, j.attempts, j.error_code, j.last_error, j.validation, j.mls_code, j.mls_reason,
                  j.mls_at, j.mls_flagged::text, j.response_code, NULL::bigint AS response_entry_id,
                  (SELECT m.id FROM mailbox_entries m
                   WHERE m.message_id = j.answers_inbound_id AND m.company_id = j.company_id) AS answers_entry_id,
                  j.created_at, j.updated_at, j.delivered_at, c.number, c.issue_date, c.due_date, c.seller_name,
                  c.buyer_name, c.payable_amount, c.currency
           FROM (SELECT) one LEFT JOIN job j ON true LEFT JOIN contents c ON true LEFT JOIN earlier e ON true,
                (SELECT count(*) FROM wake) w"""


@dataclass(frozen=True)
class Submitted:
    """What storing a submission did: the job as the API shows it, or (with ``unless_since``)
    the earlier job of the same document, when nothing was stored."""

    job: SentDocument | None
    earlier: int | None = None

    @property
    def job_id(self) -> int:
        assert self.job is not None, "refused: submitted already"
        return self.job.id


async def submit_outbound(
    pool: Db, submission: OutboundSubmission, *, notify: str | None = None, unless_since: datetime | None = None
) -> Submitted:
    """Store the document and its outbound job (and the first audit line) in one transaction,
    and wake the workers listening on ``notify`` when it commits (in the same statement). A
    spooled SBD is streamed in first with COPY, in the same transaction.

    With ``unless_since``, nothing is stored when the same document (``submission.business_key``)
    was submitted since then and did not fail: the caller holds the business key's lock
    (:func:`lock_business_key`) in its transaction, so concurrent submissions see each other."""
    sbd = submission.sbd
    if not isinstance(sbd, Spool):
        return await _submit(pool, submission, sha256(sbd), len(sbd), sbd, notify, unless_since)
    if isinstance(pool, asyncpg.Pool):
        async with pool.acquire() as conn, conn.transaction():
            await put_spooled_document(conn, sbd)
            return await _submit(conn, submission, sbd.sha256, sbd.size, None, notify, unless_since)
    async with pool.transaction():
        await put_spooled_document(pool, sbd)
        return await _submit(pool, submission, sbd.sha256, sbd.size, None, notify, unless_since)


async def _submit(
    db: Db, submission: OutboundSubmission, digest: bytes, size: int, content: bytes | None, notify: str | None,
    unless_since: datetime | None,
) -> Submitted:  # fmt: skip
    fallback = submission.fallback
    row = await db.fetchrow(
        _SUBMIT,
        submission.company_id,
        submission.sender,
        submission.receiver,
        submission.document_type,
        submission.process,
        submission.country_c1,
        submission.instance_identifier,
        digest,
        submission.as4_message_id,
        submission.conversation_id,
        submission.give_up_at,
        submission.endpoint_url,
        submission.endpoint_cert,
        submission.endpoint_url is not None,
        size,
        content,
        submission.document_id,
        submission.kind,
        submission.answers_inbound_id,
        submission.validation,
        submission.trace_context,
        _QUEUED,
        submission.business_key,
        submission.mls_type,
        fallback.receiver if fallback else None,
        sha256(fallback.sbd) if fallback else None,
        fallback.sbd if fallback else None,
        fallback.instance_identifier if fallback else None,
        *_content_values(submission.content),
        notify,
        unless_since,
        _FAILED,
    )
    assert row is not None
    fields = dict(row)
    earlier = fields.pop("earlier")
    if fields["id"] is None:
        return Submitted(None, int(earlier))
    return Submitted(_sent(fields))


def _content_values(row: ContentRow | None) -> tuple[object, ...]:
    if row is None:
        return (None,) * 9
    return (
        row.version, row.number, row.issue_date, row.due_date, row.seller_name, row.buyer_name, row.payable_amount,
        row.currency, row.view,
    )  # fmt: skip


# A transaction-scoped advisory lock per business key (its first 8 bytes as the lock's number):
# two submissions of one document queue one after the other, the second sees the first's job.
_LOCK_BUSINESS_KEY = """
    SELECT pg_advisory_xact_lock(('x' || encode(substring($1::bytea FROM 1 FOR 8), 'hex'))::bit(64)::bigint)"""
_EARLIER_SUBMISSION = """
    SELECT id FROM outbound_messages
    WHERE business_key = $1 AND created_at >= $2 AND state <> $3
    ORDER BY id LIMIT 1"""


async def lock_business_key(conn: asyncpg.Connection, business_key: bytes) -> None:
    """Take the business key's lock, held to the end of the caller's transaction."""
    await conn.execute(_LOCK_BUSINESS_KEY, business_key)


async def earlier_submission(conn: asyncpg.Connection, business_key: bytes, since: datetime) -> int | None:
    """The job of the same document submitted since ``since`` and not failed, if any. Takes the
    business key's lock first (held to the end of the caller's transaction), so of two concurrent
    submissions of one document the second finds the first."""
    await conn.execute(_LOCK_BUSINESS_KEY, business_key)
    job_id = await conn.fetchval(_EARLIER_SUBMISSION, business_key, since, _FAILED)
    return None if job_id is None else int(job_id)


def _literal(state: OutboundState) -> str:
    """A state as an SQL literal, for the few statements that must name states in their text."""
    return "'" + str(state).replace("'", "''") + "'"


# The claim names the states in its text, not as parameters: only then can PostgreSQL prove
# that the partial index ``outbound_ready`` (the unfinished jobs by next_attempt_at) serves it,
# in a plan prepared once and reused. With parameters every execution is planned again and
# the plan sorts every waiting job to take the first.
_WAITING_STATES = f"{_literal(_QUEUED)}, {_literal(_RETRYING)}"
_CLAIMABLE = f"""
    state IN ({_WAITING_STATES}, {_literal(_SENDING)})
    AND ((state IN ({_WAITING_STATES}) AND next_attempt_at <= now())
         OR (state = {_literal(_SENDING)} AND locked_until < now()))"""
_CLAIM_TEMPLATE = """
    WITH claimed AS (
               UPDATE outbound_messages o
               SET state = $2, attempts = o.attempts + 1, updated_at = now(),
                   locked_until = now() + make_interval(secs => $1), claim_token = $3
               WHERE o.id = (
                   SELECT id FROM outbound_messages
                   WHERE {which}
                   ORDER BY next_attempt_at
                   FOR UPDATE SKIP LOCKED
                   LIMIT 1)
               RETURNING o.*),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, $2, 'attempt ' || attempts FROM claimed)
           SELECT c.id, c.sender, c.receiver, c.document_type, c.process, c.country_c1,
                  CASE WHEN d.size_bytes <= $4 THEN d.content END AS sbd,
                  c.as4_message_id, c.conversation_id, c.attempts, c.give_up_at,
                  c.created_at, c.endpoint_url, c.endpoint_cert, c.fixed_endpoint, c.kind, c.company_id,
                  c.trace_context, c.claim_token AS claim, c.fallback_receiver,
                  c.document_sha256, d.size_bytes AS sbd_size
           FROM claimed c JOIN documents d ON d.sha256 = c.document_sha256"""
_CLAIM_NEXT = _CLAIM_TEMPLATE.format(which=_CLAIMABLE)
_CLAIM_ONE = _CLAIM_TEMPLATE.format(which=f"id = $5 AND {_CLAIMABLE}")


async def claim_outbound(
    pool: asyncpg.Pool, lease_seconds: float = 30.0, job_id: int | None = None
) -> OutboundJob | None:
    """Take the next due job (or job ``job_id`` if it is due), if any. ``FOR UPDATE SKIP
    LOCKED`` lets many workers in many processes share the queue; a job whose worker died
    (stopped renewing its lease) is taken again once the lease ran out. The claim gets a fresh
    token (:attr:`OutboundJob.claim`). A large document's bytes stay in the database (``sbd``
    None): the worker streams it."""
    args: tuple[object, ...] = (lease_seconds, _SENDING, uuid.uuid4(), LARGE_DOCUMENT_BYTES)
    if job_id is None:
        row = await pool.fetchrow(_CLAIM_NEXT, *args)
    else:
        row = await pool.fetchrow(_CLAIM_ONE, *args, job_id)
    if row is None:
        return None
    return OutboundJob(**dict(row))


_RENEW = """
    UPDATE outbound_messages SET locked_until = now() + make_interval(secs => $3)
    WHERE id = $1 AND claim_token = $2 AND state = $4"""


async def renew_outbound(pool: asyncpg.Pool, job_id: int, claim: uuid.UUID, lease_seconds: float) -> bool:
    """Extend the lease of a job being delivered; False when the claim is no longer ours (the
    lease ran out and another worker took the job, or the job has its outcome)."""
    status = await pool.execute(_RENEW, job_id, claim, lease_seconds, _SENDING)
    return bool(status == "UPDATE 1")


_MARK_CTES = """
    WITH doc AS (
               INSERT INTO documents (sha256, size_bytes, content)
               SELECT $7, length($12::bytea), $12 WHERE $12::bytea IS NOT NULL
               ON CONFLICT (sha256) DO NOTHING),
           upd AS (
               UPDATE outbound_messages SET
                   state = $2, updated_at = now(), locked_until = NULL, claim_token = NULL,
                   next_attempt_at = COALESCE($3, next_attempt_at),
                   error_code = $4, last_error = CASE WHEN $2 = $15 THEN NULL ELSE $5 END,
                   receipt = COALESCE($6, receipt),
                   sent_message_sha256 = COALESCE($7, sent_message_sha256),
                   endpoint_url = COALESCE($8, endpoint_url),
                   receiver_ap = COALESCE($9, receiver_ap),
                   delivered_at = CASE WHEN $2 = $15 THEN now() ELSE delivered_at END
               WHERE id = $1 AND claim_token = $17 AND state = $18
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
               ON CONFLICT (direction, source_id) DO NOTHING),
           event AS (
               INSERT INTO events (company_id, kind, payload, trace_context)
               SELECT company_id, $10, $11::jsonb, $14 FROM upd WHERE $2 IN ($15, $16))"""
_MARK = "".join(
    (
        _MARK_CTES,
        """
        SELECT count(*) FROM upd""",
    )
)
# The outcome of one job and the claim of the next due one (another than the job marked) in one
# statement: a worker that finished a delivery takes its next job in the same round trip.
_CHAINED_CLAIM = """,
           claimed AS (
               UPDATE outbound_messages o
               SET state = $18, attempts = o.attempts + 1, updated_at = now(),
                   locked_until = now() + make_interval(secs => $19), claim_token = $20
               WHERE o.id = (
                   SELECT id FROM outbound_messages
                   WHERE id <> $1 AND {claimable}
                   ORDER BY next_attempt_at
                   FOR UPDATE SKIP LOCKED
                   LIMIT 1)
               RETURNING o.*),
           claim_audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, $18, 'attempt ' || attempts FROM claimed)
        SELECT (SELECT count(*) FROM upd) AS applied, c.id, c.sender, c.receiver, c.document_type, c.process,
               c.country_c1, CASE WHEN d.size_bytes <= $21 THEN d.content END AS sbd,
               c.as4_message_id, c.conversation_id, c.attempts, c.give_up_at,
               c.created_at, c.endpoint_url, c.endpoint_cert, c.fixed_endpoint, c.kind, c.company_id,
               c.trace_context, c.claim_token AS claim, c.fallback_receiver,
               c.document_sha256, d.size_bytes AS sbd_size
        FROM (SELECT) one LEFT JOIN claimed c ON true LEFT JOIN documents d ON d.sha256 = c.document_sha256"""
_MARK_AND_CLAIM = "".join((_MARK_CTES, _CHAINED_CLAIM.format(claimable=_CLAIMABLE)))


async def mark_outbound(
    pool: Db,
    job_id: int,
    state: OutboundState,
    reason: str,
    *,
    claim: uuid.UUID | None,
    next_attempt_at: datetime | None = None,
    error_code: str | None = None,
    receipt: bytes | None = None,
    sent_message: bytes | Spool | None = None,
    endpoint_url: str | None = None,
    receiver_ap: str | None = None,
    exchanged_at: datetime | None = None,
    trace_context: str | None = None,
) -> bool:
    """Record an outcome (delivered, retrying, failed), its audit line and, when final, the
    event for the company, in one statement. A delivery with ``exchanged_at`` (the AS4
    timestamp) is also recorded for the monthly reports, unless it was a report itself.

    Only while ``claim`` is still the job's claim: False (nothing written) when the worker lost
    its lease and another attempt owns the job now. A spooled ``sent_message`` is streamed in
    with COPY in the same transaction as the outcome."""
    if isinstance(sent_message, Spool):
        args = (job_id, state, reason, claim, next_attempt_at, error_code, receipt, sent_message.sha256, None,
                endpoint_url, receiver_ap, exchanged_at, trace_context)  # fmt: skip
        try:
            if isinstance(pool, asyncpg.Pool):
                async with pool.acquire() as conn, conn.transaction():
                    return await _mark_spooled(conn, sent_message, args)
            async with pool.transaction():
                return await _mark_spooled(pool, sent_message, args)
        except _Fenced:
            return False
    sent_sha = sha256(sent_message) if sent_message is not None else None
    return await _mark(pool, job_id, state, reason, claim, next_attempt_at, error_code, receipt, sent_sha,
                       sent_message, endpoint_url, receiver_ap, exchanged_at, trace_context)  # fmt: skip


async def mark_and_claim_next(
    pool: Db,
    job_id: int,
    state: OutboundState,
    reason: str,
    *,
    claim: uuid.UUID | None,
    lease_seconds: float,
    next_attempt_at: datetime | None = None,
    error_code: str | None = None,
    receipt: bytes | None = None,
    sent_message: bytes | None = None,
    endpoint_url: str | None = None,
    receiver_ap: str | None = None,
    exchanged_at: datetime | None = None,
    trace_context: str | None = None,
) -> tuple[bool, OutboundJob | None]:
    """:func:`mark_outbound` (the evidence in memory) and :func:`claim_outbound` of the next due
    job in one statement: whether the outcome applied (the claim was still ours), and the job
    claimed next, if any (with a fresh token and lease, as a claim of its own would have)."""
    event = json.dumps({"outbound_id": job_id, "reason": reason, "error_code": error_code})
    sent_sha = sha256(sent_message) if sent_message is not None else None
    row = await pool.fetchrow(
        _MARK_AND_CLAIM, job_id, state, next_attempt_at, error_code, reason, receipt, sent_sha, endpoint_url,
        receiver_ap, f"document.{state}", event, sent_message, exchanged_at, trace_context, _DELIVERED, _FAILED,
        claim, _SENDING, lease_seconds, uuid.uuid4(), LARGE_DOCUMENT_BYTES,
    )  # fmt: skip
    assert row is not None
    fields = dict(row)
    applied = bool(fields.pop("applied"))
    return applied, None if fields["id"] is None else OutboundJob(**fields)


class _Fenced(Exception):
    """The outcome did not apply: roll back the evidence stored with it."""


async def _mark_spooled(conn: asyncpg.Connection, spool: Spool, args: tuple[Any, ...]) -> bool:
    """Store a spooled message as evidence, then the outcome, in the caller's transaction."""
    await put_spooled_document(conn, spool)
    if not await _mark(conn, *args):
        raise _Fenced
    return True


async def _mark(
    pool: Db, job_id: int, state: OutboundState, reason: str, claim: uuid.UUID | None,
    next_attempt_at: datetime | None, error_code: str | None, receipt: bytes | None, sent_sha: bytes | None,
    sent_message: bytes | None, endpoint_url: str | None, receiver_ap: str | None, exchanged_at: datetime | None,
    trace_context: str | None,
) -> bool:  # fmt: skip
    event = json.dumps({"outbound_id": job_id, "reason": reason, "error_code": error_code})
    applied = await pool.fetchval(
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
        claim,
        _SENDING,
    )
    return bool(applied)


_RELEASE = """
    WITH upd AS (
               UPDATE outbound_messages SET state = $3, locked_until = NULL, next_attempt_at = now(),
                                            updated_at = now(), claim_token = NULL
               WHERE id = $1 AND state = $4 AND claim_token = $5 RETURNING id)
           INSERT INTO outbound_audit (outbound_id, state, reason) SELECT id, $3, $2 FROM upd"""


async def release_outbound(pool: asyncpg.Pool, job_id: int, claim: uuid.UUID | None, reason: str) -> None:
    """Give a claimed job back to the queue at once (its worker is stopping), if still ours."""
    await pool.execute(_RELEASE, job_id, reason, _RETRYING, _SENDING, claim)


_USE_FALLBACK = """
    WITH upd AS (
               UPDATE outbound_messages SET state = $3, locked_until = NULL, next_attempt_at = now(),
                   updated_at = now(), claim_token = NULL, receiver = fallback_receiver,
                   document_sha256 = fallback_sha256, instance_identifier = fallback_instance,
                   fallback_receiver = NULL, fallback_sha256 = NULL, fallback_instance = NULL,
                   endpoint_url = NULL, receiver_ap = NULL, error_code = $6, last_error = $2,
                   give_up_at = greatest(give_up_at, now() + (give_up_at - created_at))
               WHERE id = $1 AND state = $4 AND claim_token = $5 AND fallback_receiver IS NOT NULL
               RETURNING id, receiver)
           INSERT INTO outbound_audit (outbound_id, state, reason)
           SELECT id, $3, $2 || '; now to ' || receiver FROM upd RETURNING id"""


async def use_fallback(pool: asyncpg.Pool, job_id: int, claim: uuid.UUID | None, code: str, reason: str) -> bool:
    """Send a claimed job to its fallback receiver from now on (if the claim is still ours),
    due at once with a fresh retry window; False when nothing changed."""
    return await pool.fetchval(_USE_FALLBACK, job_id, reason, _RETRYING, _SENDING, claim, code) is not None


_DEFER = """
    WITH upd AS (
               UPDATE outbound_messages SET state = $5, attempts = greatest(attempts - 1, 0),
                   locked_until = NULL, next_attempt_at = $2, updated_at = now(), claim_token = NULL
               WHERE id = $1 AND state = $6 AND claim_token = $8 RETURNING id)
           INSERT INTO outbound_audit (outbound_id, state, reason) SELECT id, $7, $3 FROM upd WHERE $4"""


async def defer_outbound(
    pool: asyncpg.Pool, job_id: int, claim: uuid.UUID | None, until: datetime, reason: str, *, audit: bool
) -> None:
    """Put a claimed job back without counting the attempt (if the claim is still ours): its
    endpoint's circuit is open or the endpoint is at its concurrency limit."""
    await pool.execute(_DEFER, job_id, until, reason, audit, _RETRYING, _SENDING, WAITING, claim)


# -- circuit breakers per receiving endpoint, shared by every process ------------------------------
#
# Each move is one statement. ``$2`` is the time to decide at: NULL for the database's clock (one
# clock for every process), a given time in tests. The moves that report what the state was
# before read it with ``FOR UPDATE`` in the same statement, so concurrent moves serialise.

_CLOSED, _OPEN, _HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


@dataclass(frozen=True)
class CircuitView:
    """An endpoint's circuit as admission reads it, with the time it was read at."""

    state: CircuitState
    failures: int
    cooldown: float
    opened_until: datetime | None
    probe_until: datetime | None
    now: datetime


@dataclass(frozen=True)
class CircuitChange:
    """What a failure or a success did to an endpoint's circuit."""

    before: CircuitState
    after: CircuitState
    failures: int
    cooldown: float


_READ_CIRCUIT = """
    SELECT state, failures, cooldown, opened_until, probe_until, COALESCE($2::timestamptz, now()) AS now
    FROM endpoint_circuits WHERE url = $1"""


async def read_circuit(pool: Db, url: str, now: datetime | None = None) -> CircuitView | None:
    """The endpoint's circuit; None when it never failed (closed)."""
    row = await pool.fetchrow(_READ_CIRCUIT, url, now)
    return None if row is None else CircuitView(**{**dict(row), "state": CircuitState(row["state"])})


_CLAIM_PROBE = """
    WITH t AS (SELECT COALESCE($2::timestamptz, now()) AS now)
    UPDATE endpoint_circuits c
    SET state = $5, probe_owner = $3, probe_until = t.now + make_interval(secs => $4), updated_at = t.now
    FROM t
    WHERE c.url = $1 AND ((c.state = $6 AND c.opened_until <= t.now)
                          OR (c.state = $5 AND (c.probe_until IS NULL OR c.probe_until <= t.now)))"""


async def claim_probe(pool: Db, url: str, owner: str, lease_seconds: float, now: datetime | None = None) -> bool:
    """Take the single probe of an open circuit whose cooldown is over (or of a half-open one
    whose probe was given back or whose prober died): True for the one process that got it."""
    status = await pool.execute(_CLAIM_PROBE, url, now, owner, lease_seconds, _HALF_OPEN, _OPEN)
    return bool(status == "UPDATE 1")


_RELEASE_PROBE = """
    UPDATE endpoint_circuits SET probe_owner = NULL, probe_until = NULL
    WHERE url = $1 AND probe_owner = $2 AND state = $3"""


async def release_probe(pool: Db, url: str, owner: str) -> None:
    """Give the probe back without trying it (no free slot here), for another to take at once."""
    await pool.execute(_RELEASE_PROBE, url, owner, _HALF_OPEN)


_ENSURE_CIRCUIT = """
    INSERT INTO endpoint_circuits (url, state, failures, cooldown) VALUES ($1, $2, 0, 0)
    ON CONFLICT (url) DO NOTHING"""

_CIRCUIT_FAILED = """
    WITH t AS (SELECT COALESCE($2::timestamptz, now()) AS now)
    UPDATE endpoint_circuits c
    SET failures = b.failures + 1,
        state = CASE WHEN b.opens THEN $6 ELSE b.state END,
        cooldown = CASE WHEN b.opens THEN b.next_cooldown ELSE b.cooldown END,
        opened_until = CASE WHEN b.opens THEN t.now + make_interval(secs => b.next_cooldown)
                            ELSE b.opened_until END,
        probe_owner = CASE WHEN b.opens THEN NULL ELSE b.probe_owner END,
        probe_until = CASE WHEN b.opens THEN NULL ELSE b.probe_until END,
        updated_at = t.now
    FROM t, (SELECT url, state, failures, cooldown, opened_until, probe_owner, probe_until,
                    state = $7 OR (state = $8 AND failures + 1 >= $3) AS opens,
                    least($5::float8, greatest($4::float8, cooldown * 2)) AS next_cooldown
             FROM endpoint_circuits WHERE url = $1 FOR UPDATE) b
    WHERE c.url = b.url
    RETURNING b.state AS before, c.state AS after, c.failures, c.cooldown"""


async def circuit_failed(
    pool: Db, url: str, *, threshold: int, cooldown: float, max_cooldown: float, now: datetime | None = None
) -> CircuitChange:
    """Count a transport failure; at ``threshold`` failures in a row (or when the probe failed)
    the circuit opens, for ``cooldown`` seconds the first time and twice as long after each
    failed probe, up to ``max_cooldown``. One statement once the endpoint has a row."""
    args = (url, now, threshold, cooldown, max_cooldown, _OPEN, _HALF_OPEN, _CLOSED)
    row = await pool.fetchrow(_CIRCUIT_FAILED, *args)
    if row is None:  # its first failure ever: make the row, then count
        await pool.execute(_ENSURE_CIRCUIT, url, _CLOSED)
        row = await pool.fetchrow(_CIRCUIT_FAILED, *args)
        assert row is not None
    return CircuitChange(CircuitState(row["before"]), CircuitState(row["after"]), row["failures"], row["cooldown"])


_CIRCUIT_SUCCEEDED = """
    WITH t AS (SELECT COALESCE($2::timestamptz, now()) AS now)
    UPDATE endpoint_circuits c
    SET state = $3, failures = 0, cooldown = 0, opened_until = NULL, probe_owner = NULL, probe_until = NULL,
        updated_at = t.now
    FROM t, (SELECT url, state FROM endpoint_circuits
             WHERE url = $1 AND (state <> $3 OR failures > 0) FOR UPDATE) b
    WHERE c.url = b.url
    RETURNING b.state AS before"""


async def circuit_succeeded(pool: Db, url: str, now: datetime | None = None) -> CircuitChange | None:
    """Close the circuit and forget its failures; None (nothing written) when it was closed
    without failures already."""
    before = await pool.fetchval(_CIRCUIT_SUCCEEDED, url, now, _CLOSED)
    return None if before is None else CircuitChange(CircuitState(before), _CLOSED, 0, 0.0)


@dataclass(frozen=True)
class CircuitRow:
    """An endpoint's last recorded circuit and how many jobs for it are still in the queue."""

    url: str
    state: CircuitState
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
    return [CircuitRow(**{**dict(r), "state": CircuitState(r["state"])}) for r in rows]


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
    mls_flagged: str | None  # JSON: a received MLS that broke the MLS rules, not taken as the answer
    response_code: str | None
    response_entry_id: int | None
    answers_entry_id: int | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    seller_name: str | None = None
    buyer_name: str | None = None
    payable_amount: Decimal | None = None
    currency: str | None = None


_SENT_SELECT = """
    SELECT o.id, o.kind, o.state, o.sender, o.receiver, o.document_type, o.process, o.as4_message_id,
           o.attempts, o.error_code, o.last_error, o.validation, o.mls_code, o.mls_reason, o.mls_at,
           o.mls_flagged::text, o.response_code,
           (SELECT e.id FROM mailbox_entries e
            WHERE e.message_id = o.response_inbound_id AND e.company_id = o.company_id) AS response_entry_id,
           (SELECT e.id FROM mailbox_entries e
            WHERE e.message_id = o.answers_inbound_id AND e.company_id = o.company_id) AS answers_entry_id,
           o.created_at, o.updated_at, o.delivered_at, c.number, c.issue_date, c.due_date, c.seller_name,
           c.buyer_name, c.payable_amount, c.currency
    FROM outbound_messages o LEFT JOIN document_contents c ON c.outbound_id = o.id"""
_SENT_ONE = _SENT_SELECT + " WHERE o.id = $1 AND o.company_id = $2"
_SENT_PAGE = (
    _SENT_SELECT
    + """ WHERE o.company_id = $1 AND ($2::bigint IS NULL OR o.id < $2)
         AND ($3::timestamptz IS NULL OR o.created_at >= $3) AND ($4::timestamptz IS NULL OR o.created_at < $4)
         AND o.document_type LIKE ANY($5::text[]) AND ($6::text IS NULL OR o.document_type = $6)
         AND ($7::text IS NULL OR o.state = $7)
         AND ($9::text IS NULL OR lower(c.number) = lower($9))
         AND ($10::numeric IS NULL OR c.payable_amount >= $10) AND ($11::numeric IS NULL OR c.payable_amount <= $11)
         AND ($12::date IS NULL OR c.issue_date >= $12) AND ($13::date IS NULL OR c.issue_date <= $13)
         AND ($14::text IS NULL OR c.seller_name ILIKE $15 OR c.buyer_name ILIKE $15
              OR o.receiver = lower($14) OR split_part(o.receiver, '::', 2) = lower($14))
       ORDER BY o.id DESC LIMIT $8"""
)


def _sent(row: asyncpg.Record | dict[str, Any]) -> SentDocument:
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
    content: ContentFilter | None = None,
) -> list[SentDocument]:
    """Newest first, ids below ``before``; ``document_types`` are LIKE patterns, ``state`` a job state,
    ``content`` filters on the documents' content views (the receiver is the partner)."""
    rows = await pool.fetch(
        _SENT_PAGE, company_id, before, start, end, document_types, document_type, state, limit,
        *(content or ContentFilter()).params(),
    )  # fmt: skip
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


@dataclass(frozen=True)
class QueueDepth:
    state: OutboundState
    count: int
    oldest_seconds: float


async def queue_depth(pool: asyncpg.Pool) -> list[QueueDepth]:
    """Documents waiting or in flight, by state, with the age of the oldest."""
    rows = await pool.fetch(
        "SELECT state, count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age "
        "FROM outbound_messages WHERE state = ANY($1::text[]) GROUP BY state",
        [str(s) for s in IN_FLIGHT],
    )
    return [QueueDepth(OutboundState(r["state"]), int(r["n"]), float(r["age"])) for r in rows]


# -- the console's message trace ---------------------------------------------------------------------


@dataclass(frozen=True)
class TracedSent:
    """A sent document as the console traces it: what the API shows, plus the envelope and the
    job's delivery facts (where, when next, which evidence is kept)."""

    sent: SentDocument
    company_id: uuid.UUID | None
    document_id: str | None
    country_c1: str
    instance_identifier: str
    conversation_id: str
    endpoint_url: str | None
    next_attempt_at: datetime
    give_up_at: datetime
    has_message: bool
    has_receipt: bool
    archive_key: str | None


_TRACE_EXTRA = (
    "o.company_id, o.document_id, o.country_c1, o.instance_identifier, o.conversation_id, o.endpoint_url,"
    " o.next_attempt_at, o.give_up_at, o.sent_message_sha256 IS NOT NULL AS has_message,"
    " o.receipt IS NOT NULL AS has_receipt, o.archive_key"
)
_TRACE_SELECT = _SENT_SELECT.replace(
    "\n    FROM outbound_messages o", f", {_TRACE_EXTRA}\n    FROM outbound_messages o"
)
_TRACE_FIELDS = ("company_id", "document_id", "country_c1", "instance_identifier", "conversation_id", "endpoint_url",
                 "next_attempt_at", "give_up_at", "has_message", "has_receipt", "archive_key")  # fmt: skip
_TRACE_ONE = _TRACE_SELECT + " WHERE o.id = $1 AND o.company_id = ANY($2::uuid[])"
_TRACE_PAGE = (
    _TRACE_SELECT
    + """ WHERE o.company_id = ANY($1::uuid[])
          AND ($2::text IS NULL OR o.document_id = $2 OR o.as4_message_id = $2)
          AND ($3::text IS NULL OR strpos(lower(o.sender), lower($3)) > 0)
          AND ($4::text IS NULL OR strpos(lower(o.receiver), lower($4)) > 0)
          AND ($5::text IS NULL OR o.state = $5)
          AND ($6::timestamptz IS NULL OR o.created_at >= $6) AND ($7::timestamptz IS NULL OR o.created_at < $7)
        ORDER BY o.id DESC LIMIT $8"""
)


def _traced(row: asyncpg.Record) -> TracedSent:
    fields = dict(row)
    extra = {name: fields.pop(name) for name in _TRACE_FIELDS}
    fields["state"] = OutboundState(fields["state"])
    return TracedSent(SentDocument(**fields), **extra)


async def traced_sent(pool: Db, company_ids: list[uuid.UUID], job_id: int) -> TracedSent | None:
    """One document sent by one of ``company_ids`` (the caller's tenants), else None."""
    row = await pool.fetchrow(_TRACE_ONE, job_id, company_ids)
    return None if row is None else _traced(row)


async def search_sent(
    pool: Db,
    company_ids: list[uuid.UUID],
    *,
    number: str | None = None,
    participant: str | None = None,
    partner: str | None = None,
    state: OutboundState | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
) -> list[TracedSent]:
    """Documents the companies sent, newest first: ``number`` is the business document's ID or
    the AS4 MessageId, ``participant`` (the sender) and ``partner`` (the receiver) match any
    part of the participant id."""
    rows = await pool.fetch(
        _TRACE_PAGE, company_ids, number, participant, partner, None if state is None else str(state), start, end,
        limit,
    )  # fmt: skip
    return [_traced(r) for r in rows]


@dataclass(frozen=True)
class SentEvidence:
    """What proves a delivery: the AS4 message as sent and the receipt that came back (None
    when not kept in the database: never sent, or moved to the archive under ``archive_key``)."""

    message: bytes | None
    receipt: bytes | None
    archive_key: str | None


_EVIDENCE = """
    SELECT d.content AS message, o.receipt, o.archive_key
    FROM outbound_messages o LEFT JOIN documents d ON d.sha256 = o.sent_message_sha256
    WHERE o.id = $1 AND o.company_id = ANY($2::uuid[])"""


async def sent_evidence(pool: Db, company_ids: list[uuid.UUID], job_id: int) -> SentEvidence | None:
    row = await pool.fetchrow(_EVIDENCE, job_id, company_ids)
    if row is None:
        return None
    message, receipt = row["message"], row["receipt"]
    return SentEvidence(
        None if message is None else bytes(message), None if receipt is None else bytes(receipt), row["archive_key"]
    )


async def add_audit_note(conn: Db, job_id: int, state: OutboundState, reason: str) -> None:
    """An audit line that does not move the job (it stays in ``state``): for example that a
    failed document was sent again as another one."""
    await conn.execute("INSERT INTO outbound_audit (outbound_id, state, reason) VALUES ($1, $2, $3)", job_id, state,
                       reason)  # fmt: skip
