"""The duties domain's SQL, behind typed functions."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from gateway.core.database import holds_session_state
from gateway.duties.mls_levels import ALWAYS_SEND, DEFAULT_MLS_TYPE, NO_MLS_KINDS, Level, LevelFigures
from gateway.duties.report_documents import EndUserExchange, ExchangeCount
from gateway.duties.states import ReportState, report_state


@asynccontextmanager
async def advisory_lock(pool: asyncpg.Pool, key: int) -> AsyncIterator[bool]:
    """Hold PostgreSQL advisory lock ``key`` for the block when no other session has it (yields
    True), so one process of a deployment does a job at a time; yields False otherwise."""
    async with pool.acquire() as conn:
        holds_session_state(conn)  # released with the full reset, whatever happens below
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            yield False
            return
        try:
            yield True
        finally:
            await conn.fetchval("SELECT pg_advisory_unlock($1)", key)


async def mark_provider(conn: asyncpg.Connection, company_id: uuid.UUID) -> None:
    """This company holds the access point's own SPID."""
    await conn.execute("UPDATE companies SET provider = true WHERE id = $1", company_id)


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


async def flag_mls(
    conn: asyncpg.Connection,
    instance_identifier: str,
    from_spid_digits: str,
    code: str,
    rules: list[str],
    inbound_id: int,
) -> int | None:
    """A received MLS that breaks the MLS rules: the document it names keeps no answer from it
    (its ``mls_code`` stays as it was); the MLS is recorded beside it as flagged, with an audit
    line, and the operators are told (``mls.invalid``). Returns the document's id, if found."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        """WITH target AS (
               SELECT id FROM outbound_messages
               WHERE instance_identifier = $1 AND kind <> 'mls' AND right(coalesce(receiver_ap, ''), 6) = $2
               ORDER BY id DESC LIMIT 1),
           upd AS (
               UPDATE outbound_messages o
               SET mls_flagged = jsonb_build_object('code', $3::text, 'rules', $4::text[], 'mls_message_id', $5::bigint,
                                                    'at', now()),
                   updated_at = now()
               FROM target t WHERE o.id = t.id RETURNING o.id),
           audit AS (
               INSERT INTO outbound_audit (outbound_id, state, reason)
               SELECT id, 'mls_flagged', 'Message Level Status ' || $3 || ' received but not taken: it breaks '
                                       || array_to_string($4::text[], ', ') FROM upd),
           event AS (
               INSERT INTO events (company_id, kind, payload)
               VALUES (NULL, 'mls.invalid', jsonb_build_object(
                   'mls_message_id', $5::bigint, 'instance_identifier', $1::text, 'code', $3::text,
                   'rules', $4::text[], 'outbound_id', (SELECT id FROM upd))))
           SELECT id FROM upd""",
        instance_identifier,
        from_spid_digits,
        code,
        rules,
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


async def month_exchange_counts(pool: asyncpg.Pool, start: datetime, end: datetime) -> list[ExchangeCount]:
    """Exchanges in [start, end) grouped by every TSR key (a few rows, however many messages)."""
    rows = await pool.fetch(
        """SELECT direction, other_sp, document_type, process, transport_profile, country_c1, country_c4,
                  count(*) AS count
           FROM exchanges WHERE exchanged_at >= $1 AND exchanged_at < $2
           GROUP BY 1, 2, 3, 4, 5, 6, 7""",
        start,
        end,
    )
    return [ExchangeCount(**dict(r)) for r in rows]


async def month_end_users(pool: asyncpg.Pool, start: datetime, end: datetime) -> list[EndUserExchange]:
    """The exchanges in [start, end) that count for the EUSR, each with the company and the
    participant identifier it used (the sender when sending, the receiver when receiving): the
    EUSR counts distinct end users, never messages, and unifies identifiers that name one."""
    rows = await pool.fetch(
        """SELECT DISTINCT e.company_id::text AS company,
                  CASE WHEN e.direction = 'out' THEN o.sender
                       ELSE i.receiver_scheme || '::' || i.receiver_value END AS participant,
                  e.direction, e.document_type, e.process, coalesce(e.end_user_country, 'ZZ') AS country
           FROM exchanges e
           LEFT JOIN outbound_messages o ON e.direction = 'out' AND o.id = e.source_id
           LEFT JOIN inbound_messages i ON e.direction = 'in' AND i.id = e.source_id
           WHERE e.exchanged_at >= $1 AND e.exchanged_at < $2 AND e.counts_for_eusr
             AND (e.company_id IS NOT NULL OR o.id IS NOT NULL OR i.id IS NOT NULL)""",
        start,
        end,
    )
    return [EndUserExchange(**dict(r)) for r in rows]


async def save_report(
    pool: asyncpg.Pool, kind: str, start: date, end: date, content: bytes, valid: bool, validation: str
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


@dataclass(frozen=True)
class ReportRow:
    """A stored report with the state of its delivery (the ``outbound_*`` facts are None before
    it is sent)."""

    id: int
    kind: str
    period_start: date
    period_end: date
    valid: bool
    validation: str  # JSON
    outbound_id: int | None
    created_at: datetime
    updated_at: datetime
    outbound_state: str | None
    delivered_at: datetime | None
    last_error: str | None
    has_receipt: bool

    @property
    def state(self) -> ReportState:
        return report_state(self.valid, self.outbound_id, self.outbound_state)


_REPORT_SELECT = """SELECT r.id, r.kind, r.period_start, r.period_end, r.valid, r.validation, r.outbound_id,
                  r.created_at, r.updated_at, o.state AS outbound_state, o.delivered_at, o.last_error,
                  o.receipt IS NOT NULL AS has_receipt
           FROM reports r LEFT JOIN outbound_messages o ON o.id = r.outbound_id"""


async def report_row(pool: asyncpg.Pool, kind: str, start: date) -> ReportRow | None:
    """A month's report with the state of its delivery."""
    row = await pool.fetchrow(f"{_REPORT_SELECT} WHERE r.kind = $1 AND r.period_start = $2", kind, start)
    return None if row is None else ReportRow(**dict(row))


async def release_failed_report(pool: asyncpg.Pool, report_id: int) -> None:
    """Forget a delivery that failed, so the report is built and sent again."""
    await pool.execute("UPDATE reports SET outbound_id = NULL, updated_at = now() WHERE id = $1", report_id)


async def set_report_sent(pool: asyncpg.Pool, report_id: int, outbound_id: int) -> None:
    await pool.execute("UPDATE reports SET outbound_id = $2, updated_at = now() WHERE id = $1", report_id, outbound_id)


async def list_reports(pool: asyncpg.Pool, limit: int = 48) -> list[ReportRow]:
    rows = await pool.fetch(f"{_REPORT_SELECT} ORDER BY r.period_start DESC, r.kind LIMIT $1", limit)
    return [ReportRow(**dict(r)) for r in rows]


@dataclass(frozen=True)
class ExchangeToArchive:
    """A completed exchange with everything its archive entry holds."""

    direction: str  # "in" or "out"
    id: int
    at: datetime  # received (in) or created (out): the entry's date
    document: bytes  # the Peppol envelope
    message: bytes | None  # the AS4 message as received or sent
    receipt: bytes | None
    columns: dict[str, Any]  # every metadata column of the message row, for record.json
    audit: list[Any] | None  # the audit trail of a sent document
    digests: tuple[bytes, ...]  # the stored documents it uses, released once archived


_CONTENT = {"document", "message", "receipt", "audit"}


def _to_archive(direction: str, row: Any) -> ExchangeToArchive:
    values = dict(row)
    audit = values.get("audit")
    if isinstance(audit, str):
        audit = json.loads(audit)
    sent = values["message_sha256"] if direction == "in" else values["sent_message_sha256"]
    return ExchangeToArchive(
        direction=direction,
        id=values["id"],
        at=values["received_at"] if direction == "in" else values["created_at"],
        document=bytes(values["document"]),
        message=None if values["message"] is None else bytes(values["message"]),
        receipt=None if values["receipt"] is None else bytes(values["receipt"]),
        columns={k: v for k, v in values.items() if k not in _CONTENT},
        audit=audit if direction == "out" else None,
        digests=tuple(bytes(d) for d in (values["document_sha256"], sent) if d is not None),
    )


async def inbound_to_archive(
    pool: asyncpg.Pool, cutoff: datetime, limit: int, *, processed: str
) -> list[ExchangeToArchive]:
    """Received messages older than ``cutoff`` whose processing is ``processed`` (done), with
    their content."""
    rows = await pool.fetch(
        """SELECT m.*, d.content AS document, e.content AS message
           FROM inbound_messages m
           JOIN documents d ON d.sha256 = m.document_sha256
           LEFT JOIN documents e ON e.sha256 = m.message_sha256
           WHERE m.archived_at IS NULL AND m.processing = $3 AND m.received_at < $1
           ORDER BY m.received_at LIMIT $2""",
        cutoff,
        limit,
        processed,
    )
    return [_to_archive("in", r) for r in rows]


async def outbound_to_archive(
    pool: asyncpg.Pool, cutoff: datetime, limit: int, *, ended: tuple[str, ...]
) -> list[ExchangeToArchive]:
    """Sent documents that ended (their state in ``ended``: delivered or failed) before
    ``cutoff``, with their content."""
    rows = await pool.fetch(
        """SELECT o.*, d.content AS document, s.content AS message,
                  (SELECT coalesce(json_agg(json_build_object('at', a.at, 'state', a.state, 'reason', a.reason)
                                            ORDER BY a.id), '[]'::json)
                   FROM outbound_audit a WHERE a.outbound_id = o.id) AS audit
           FROM outbound_messages o
           JOIN documents d ON d.sha256 = o.document_sha256
           LEFT JOIN documents s ON s.sha256 = o.sent_message_sha256
           WHERE o.archived_at IS NULL AND o.state = ANY($3::text[]) AND o.updated_at < $1
           ORDER BY o.updated_at LIMIT $2""",
        cutoff,
        limit,
        list(ended),
    )
    return [_to_archive("out", r) for r in rows]


async def mark_archived(conn: asyncpg.Connection, direction: str, row_id: int, key: str) -> None:
    """The message now lives in the archive: keep its metadata, drop its receipt here."""
    table = "inbound_messages" if direction == "in" else "outbound_messages"
    await conn.execute(
        f"UPDATE {table} SET archived_at = now(), archive_key = $2, receipt = NULL WHERE id = $1",  # noqa: S608
        row_id,
        key,
    )


@dataclass(frozen=True)
class ArchivedExchange:
    direction: str  # "in" or "out"
    id: int
    archive_key: str


async def archived_before(pool: asyncpg.Pool, cutoff: datetime, limit: int) -> list[ArchivedExchange]:
    """Archived exchanges past their retention."""
    rows = await pool.fetch(
        """(SELECT 'in' AS direction, id, archive_key FROM inbound_messages
            WHERE archived_at IS NOT NULL AND received_at < $1 LIMIT $2)
           UNION ALL
           (SELECT 'out', id, archive_key FROM outbound_messages
            WHERE archived_at IS NOT NULL AND created_at < $1 LIMIT $2)""",
        cutoff,
        limit,
    )
    return [ArchivedExchange(**dict(r)) for r in rows]


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


# -- Message Level Status service levels (MLS-1 as C3, MLS-2 as C2) ------------------------------
#
# ``now`` is the time to measure at: NULL for the database's clock, a given time in tests.

# Each document that owes an MLS (MLS-1) or is owed one (MLS-2), with when its clock started,
# when the MLS came, and the partner access point.
_MLS_OWED_BY_US = """
    SELECT m.id, m.sending_ap AS partner, m.received_at AS started_at, o.delivered_at AS done_at,
           m.mls_warned_at AS warned_at
    FROM inbound_messages m LEFT JOIN outbound_messages o ON o.id = m.mls_outbound_id AND o.state = $1
    WHERE m.kind <> ALL($2::text[]) AND (coalesce(m.mls_type, $3) = $4 OR m.status = $5)
      AND m.received_at >= $6 AND m.received_at < $7"""
_MLS_OWED_TO_US = """
    SELECT o.id, coalesce(o.receiver_ap, '') AS partner, o.delivered_at AS started_at, o.mls_at AS done_at,
           o.mls_warned_at AS warned_at
    FROM outbound_messages o
    WHERE o.kind <> ALL($2::text[]) AND o.state = $1
      AND (coalesce(o.mls_type, $3) = $4 OR o.mls_code IS NOT NULL) AND $5::text IS NOT NULL
      AND o.delivered_at >= $6 AND o.delivered_at < $7"""

_MLS_FIGURES = """
    WITH owed AS ({owed}),
         timed AS (
             SELECT partner, extract(epoch FROM done_at - started_at)::float8 AS seconds,
                    extract(epoch FROM coalesce($8::timestamptz, now()) - started_at)::float8 AS age
             FROM owed)
    SELECT partner, count(*) AS count, count(seconds) AS with_mls,
           count(*) FILTER (WHERE seconds <= $9) AS within_limit,
           count(*) FILTER (WHERE seconds IS NULL AND age <= $9) AS waiting,
           count(*) FILTER (WHERE seconds IS NULL AND age > $9) AS overdue,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50_seconds,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds) AS p99_seconds,
           grouping(partner) = 1 AS total
    FROM timed GROUP BY ROLLUP (partner) ORDER BY total, partner"""


@dataclass(frozen=True)
class MlsStates:
    """The state values the MLS queries bind (from the domains' enums)."""

    delivered: str
    rejected: str


def _owed(level: Level) -> str:
    return _MLS_OWED_BY_US if level.role == "sending" else _MLS_OWED_TO_US


async def mls_figures(
    pool: asyncpg.Pool, level: Level, start: datetime, end: datetime, states: MlsStates, now: datetime | None = None
) -> tuple[LevelFigures, list[LevelFigures]]:
    """A level's figures for the documents whose clock started in [start, end): everyone's,
    and one per partner access point."""
    rows = await pool.fetch(
        _MLS_FIGURES.format(owed=_owed(level)),
        states.delivered,
        list(NO_MLS_KINDS),
        DEFAULT_MLS_TYPE,
        ALWAYS_SEND,
        states.rejected,
        start,
        end,
        now,
        level.limit.total_seconds(),
    )
    figures = [LevelFigures(**{k: v for k, v in dict(r).items() if k != "total"}) for r in rows if not r["total"]]
    totals = [LevelFigures(**{k: v for k, v in dict(r).items() if k != "total"}) for r in rows if r["total"]]
    total = totals[0] if totals else LevelFigures(None, 0, 0, 0, 0, 0, None, None)
    return total, figures


@dataclass(frozen=True)
class MlsLate:
    """A document whose MLS nears its limit without having come (operators were just told)."""

    level: str
    id: int
    partner: str
    started_at: datetime


_MLS_WARN = """
    WITH owed AS MATERIALIZED ({owed}),
         marked AS (
             UPDATE {table} t SET mls_warned_at = $8
             FROM (SELECT id FROM owed WHERE done_at IS NULL AND warned_at IS NULL ORDER BY id LIMIT $9) due
             WHERE t.id = due.id AND t.mls_warned_at IS NULL
             RETURNING t.id),
         ev AS (
             INSERT INTO events (company_id, kind, payload)
             SELECT NULL, $10, jsonb_build_object(
                        'level', $11::text, 'direction', $12::text, 'partner', o.partner,
                        'document', $13::text || o.id, 'started_at', o.started_at,
                        'limit_minutes', $14::float8 / 60,
                        'minutes_waited', round((extract(epoch FROM $8 - o.started_at) / 60)::numeric, 1))
             FROM marked JOIN owed o ON o.id = marked.id)
    SELECT o.id, o.partner, o.started_at FROM marked JOIN owed o ON o.id = marked.id ORDER BY o.id"""


async def warn_mls_late(
    pool: asyncpg.Pool,
    level: Level,
    warn_after: float,
    states: MlsStates,
    *,
    now: datetime,
    look_back: float = 86400.0,
    limit: int = 200,
) -> list[MlsLate]:
    """Mark the documents whose MLS has not come ``warn_after`` seconds after their clock
    started (and not warned of yet, started within ``look_back``) and add one operator event
    ``mls.deadline_near`` for each, in one statement: each is warned of once."""
    table, prefix = ("inbound_messages", "r") if level.role == "sending" else ("outbound_messages", "s")
    rows = await pool.fetch(
        _MLS_WARN.format(owed=_owed(level), table=table),
        states.delivered,
        list(NO_MLS_KINDS),
        DEFAULT_MLS_TYPE,
        ALWAYS_SEND,
        states.rejected,
        now - timedelta(seconds=look_back),
        now - timedelta(seconds=warn_after),
        now,
        limit,
        "mls.deadline_near",
        level.name,
        level.role,
        prefix,
        level.limit.total_seconds(),
    )
    return [MlsLate(level.name, r["id"], r["partner"], r["started_at"]) for r in rows]
