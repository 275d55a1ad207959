"""The inbound domain's SQL, behind typed functions."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from gateway.documents.queries import sha256
from gateway.outbound.queries import reporting_counts

# -- the mailbox, as the API reads it


@dataclass(frozen=True)
class ReceivedDocument:
    """A company's mailbox entry and the received message it holds."""

    entry_id: int
    read_at: datetime | None
    id: int  # the received message
    kind: str
    sender_scheme: str
    sender_value: str
    receiver_scheme: str
    receiver_value: str
    document_type: str
    process: str
    country_c1: str | None
    as4_message_id: str
    sending_ap: str
    payload_bytes: int
    received_at: datetime
    validation: str | None  # JSON of the receiving company's validation, when it ran
    mls_code: str | None
    answers_outbound_id: int | None
    response_code: str | None
    response_outbound_id: int | None
    document_sha256: bytes
    archive_key: str | None


_RECEIVED_SELECT = """
    SELECT e.id AS entry_id, e.read_at, m.id, m.kind, m.sender_scheme, m.sender_value, m.receiver_scheme,
           m.receiver_value, m.document_type, m.process, m.country_c1, m.as4_message_id, m.sending_ap,
           m.payload_bytes, m.received_at, m.validation, m.mls_code, m.answers_outbound_id, m.response_code,
           m.response_outbound_id, m.document_sha256, m.archive_key
    FROM mailbox_entries e JOIN inbound_messages m ON m.id = e.message_id"""
_RECEIVED_ONE = _RECEIVED_SELECT + " WHERE e.id = $1 AND e.company_id = $2 AND m.document_type LIKE ANY($3::text[])"
_RECEIVED_PAGE = (
    _RECEIVED_SELECT
    + """ WHERE e.company_id = $1 AND ($2::bigint IS NULL OR e.id < $2)
          AND ($3::timestamptz IS NULL OR m.received_at >= $3)
          AND ($4::timestamptz IS NULL OR m.received_at < $4)
          AND m.document_type LIKE ANY($5::text[])
          AND ($6::text IS NULL OR m.document_type = $6)
          AND ($7::text IS NULL OR m.sender_scheme || '::' || m.sender_value = lower($7)
               OR m.sender_value = lower($7))
          AND ($8::boolean IS NULL OR (e.read_at IS NOT NULL) = $8)
        ORDER BY e.id DESC LIMIT $9"""
)
_ACKNOWLEDGE = "UPDATE mailbox_entries SET read_at = coalesce(read_at, now()) WHERE id = $1 AND company_id = $2"


def _received(row: asyncpg.Record) -> ReceivedDocument:
    fields = dict(row)
    fields["document_sha256"] = bytes(fields["document_sha256"])
    return ReceivedDocument(**fields)


async def received_document(
    pool: asyncpg.Pool | asyncpg.Connection, company_id: uuid.UUID, entry_id: int, document_types: list[str]
) -> ReceivedDocument | None:
    """One entry of the company's mailbox, if its document type matches a LIKE pattern given."""
    row = await pool.fetchrow(_RECEIVED_ONE, entry_id, company_id, document_types)
    return None if row is None else _received(row)


async def list_received(
    pool: asyncpg.Pool | asyncpg.Connection,
    company_id: uuid.UUID,
    *,
    before: int | None,
    start: datetime | None,
    end: datetime | None,
    document_types: list[str],
    document_type: str | None,
    sender: str | None,
    acknowledged: bool | None,
    limit: int,
) -> list[ReceivedDocument]:
    """Newest first, entry ids below ``before``; ``sender`` matches with or without its scheme."""
    rows = await pool.fetch(
        _RECEIVED_PAGE, company_id, before, start, end, document_types, document_type, sender, acknowledged, limit
    )
    return [_received(r) for r in rows]


async def acknowledge_received(pool: asyncpg.Pool | asyncpg.Connection, company_id: uuid.UUID, entry_id: int) -> None:
    """Mark the entry read (the first acknowledgement's time is kept)."""
    await pool.execute(_ACKNOWLEDGE, entry_id, company_id)


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
