"""The inbound domain's SQL, behind typed functions."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from gateway.directory.queries import ReceivingCompany
from gateway.documents.content import ContentRow
from gateway.documents.queries import ContentFilter, put_spooled_document, sha256
from gateway.documents.spool import Spool
from gateway.inbound.states import MessageStatus, ProcessingState, check_move
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
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    seller_name: str | None = None
    buyer_name: str | None = None
    payable_amount: Decimal | None = None
    currency: str | None = None


_RECEIVED_SELECT = """
    SELECT e.id AS entry_id, e.read_at, m.id, m.kind, m.sender_scheme, m.sender_value, m.receiver_scheme,
           m.receiver_value, m.document_type, m.process, m.country_c1, m.as4_message_id, m.sending_ap,
           m.payload_bytes, m.received_at, m.validation, m.mls_code, m.answers_outbound_id, m.response_code,
           m.response_outbound_id, m.document_sha256, m.archive_key, c.number, c.issue_date, c.due_date,
           c.seller_name, c.buyer_name, c.payable_amount, c.currency
    FROM mailbox_entries e JOIN inbound_messages m ON m.id = e.message_id
    LEFT JOIN document_contents c ON c.inbound_id = m.id"""
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
          AND ($10::text IS NULL OR lower(c.number) = lower($10))
          AND ($11::numeric IS NULL OR c.payable_amount >= $11) AND ($12::numeric IS NULL OR c.payable_amount <= $12)
          AND ($13::date IS NULL OR c.issue_date >= $13) AND ($14::date IS NULL OR c.issue_date <= $14)
          AND ($15::text IS NULL OR c.seller_name ILIKE $16 OR c.buyer_name ILIKE $16
               OR m.sender_value = lower($15) OR m.sender_scheme || '::' || m.sender_value = lower($15))
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
    content: ContentFilter | None = None,
) -> list[ReceivedDocument]:
    """Newest first, entry ids below ``before``; ``sender`` matches with or without its scheme;
    ``content`` filters on the documents' content views (the sender is the partner)."""
    rows = await pool.fetch(
        _RECEIVED_PAGE, company_id, before, start, end, document_types, document_type, sender, acknowledged, limit,
        *(content or ContentFilter()).params(),
    )  # fmt: skip
    return [_received(r) for r in rows]


async def acknowledge_received(pool: asyncpg.Pool | asyncpg.Connection, company_id: uuid.UUID, entry_id: int) -> None:
    """Mark the entry read (the first acknowledgement's time is kept)."""
    await pool.execute(_ACKNOWLEDGE, entry_id, company_id)


@dataclass(frozen=True)
class InboundRecord:
    """A received message as it is stored. The receiving company is looked up by the statement
    that stores it (the verified company serving ``receiver`` for the document type and
    process); what its inbound validation policy means for the message is decided before:
    the policies under which the message is held out of the mailbox (``held_when``) and under
    which the inbound processor has work to do with it (``processing_when``)."""

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
    document_id: str = ""
    kind: str = "business"  # business, response, mls, mlr, report
    held_when: tuple[str, ...] = ()  # policies under which it waits for the inbound processor
    processing_when: tuple[str, ...] = ()  # policies under which the processor has work to do
    mls_to: str | None = None
    mls_type: str | None = None
    trace_context: str | None = None
    content: ContentRow | None = None  # the document's content view, kept with it


@dataclass(frozen=True)
class Stored:
    """What storing a received message did: stored (and whether the inbound processor has work
    with it), or nothing because it came before (``first_receipt``, empty when archived) or no
    verified company receives it here (``serviced`` False)."""

    stored: bool
    first_receipt: bytes | None = None
    serviced: bool = True
    processing: bool = False
    raced: bool = False  # the same message was being stored by another request at the same time


@dataclass(frozen=True)
class Arrival:
    """What is known of a received message before it is stored, read in one statement: the
    receipt sent when it came before (empty when archived; None: not seen) and the verified
    company receiving its document type and process as its receiver (None: not serviced)."""

    first_receipt: bytes | None
    company: ReceivingCompany | None


_ARRIVAL = """
    SELECT (SELECT coalesce(m.receipt, ''::bytea) FROM inbound_messages m
            WHERE m.as4_message_id = $1 AND m.sending_ap = $2) AS first_receipt,
           c.id, c.country, c.inbound_validation
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT co.id, co.country, co.inbound_validation FROM participants p
        JOIN participant_services s ON s.scheme = p.scheme AND s.value = p.value
        JOIN companies co ON co.id = p.company_id
        WHERE p.scheme = $3 AND p.value = $4 AND s.document_type = $5 AND s.process = $6 AND co.verified
        LIMIT 1) c ON true"""


async def arrival(
    pool: asyncpg.Pool | asyncpg.Connection,
    as4_message_id: str,
    sending_ap: str,
    receiver: tuple[str, str],
    document_type: str,
    process: str,
) -> Arrival:
    """The duplicate check and the receiving company of a message (as its AS4 header names
    them) in one round trip."""
    row = await pool.fetchrow(_ARRIVAL, as4_message_id, sending_ap, receiver[0], receiver[1].lower(), document_type,
                              process)  # fmt: skip
    assert row is not None
    company = None if row["id"] is None else ReceivingCompany(row["id"], row["country"], row["inbound_validation"])
    first = row["first_receipt"]
    return Arrival(None if first is None else bytes(first), company)


async def find_inbound_receipt(
    conn: asyncpg.Connection | asyncpg.Pool, as4_message_id: str, sending_ap: str
) -> bytes | None:
    """The receipt sent for a message seen before; empty when it was archived, None if unseen."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT coalesce(receipt, ''::bytea) FROM inbound_messages WHERE as4_message_id = $1 AND sending_ap = $2",
        as4_message_id,
        sending_ap,
    )


_STORE_SQL = """
    WITH company AS (
               SELECT co.id, co.country, co.inbound_validation FROM participants p
               JOIN participant_services s ON s.scheme = p.scheme AND s.value = p.value
               JOIN companies co ON co.id = p.company_id
               WHERE p.scheme = :receiver_scheme AND p.value = :receiver_value AND s.document_type = :document_type
                 AND s.process = :process AND co.verified
               LIMIT 1),
           first AS (
               SELECT coalesce(receipt, ''::bytea) AS receipt FROM inbound_messages
               WHERE as4_message_id = :as4_message_id AND sending_ap = :sending_ap),
           go AS (
               SELECT id, country, inbound_validation = ANY(:held_when::text[]) AS held,
                      inbound_validation = ANY(:processing_when::text[]) AS processing
               FROM company WHERE NOT EXISTS (SELECT FROM first)),
           docs AS (
               INSERT INTO documents (sha256, size_bytes, content)
               SELECT d.sha256, d.size_bytes, d.content
               FROM go, (VALUES (:document_sha256::bytea, :payload_bytes::bigint, :document::bytea),
                                (:message_sha256::bytea, :message_bytes::bigint, :message::bytea))
                        d (sha256, size_bytes, content)
               ON CONFLICT (sha256) DO NOTHING),
           msg AS (
               INSERT INTO inbound_messages (
                   as4_message_id, sending_ap, sender_cert_subject, conversation_id,
                   sender_scheme, sender_value, receiver_scheme, receiver_value,
                   document_type, process, country_c1, document_sha256, payload_bytes,
                   message_bytes, receipt, sent_at, instance_identifier, message_sha256,
                   company_id, document_id, kind, status, processing, mls_to, mls_type)
               SELECT :as4_message_id, :sending_ap, :sender_cert_subject, :conversation_id,
                      :sender_scheme, :sender_value, :receiver_scheme, :receiver_value,
                      :document_type, :process, :country_c1, :document_sha256, :payload_bytes,
                      :message_bytes, :receipt, :sent_at, :instance_identifier, :message_sha256,
                      go.id, :document_id, :kind, CASE WHEN go.held THEN :status_held ELSE :status_stored END,
                      CASE WHEN go.processing THEN :processing_pending ELSE :processing_done END, :mls_to, :mls_type
               FROM go
               RETURNING id),
           box AS (
               INSERT INTO mailbox_entries (company_id, message_id)
               SELECT go.id, msg.id FROM msg, go WHERE NOT go.held),
           contents AS (
               INSERT INTO document_contents (inbound_id, view_version, number, issue_date, due_date, seller_name,
                                              buyer_name, payable_amount, currency, content)
               SELECT id, :view_version, :number, :issue_date, :due_date, :seller_name, :buyer_name,
                      :payable_amount, :currency, :content::jsonb
               FROM msg WHERE :has_content),
           exchange AS (
               INSERT INTO exchanges (direction, source_id, exchanged_at, other_sp, document_type, process,
                                      country_c1, country_c4, company_id, end_user_country, counts_for_eusr)
               SELECT 'in', msg.id, :sent_at, :sending_ap, :document_type, :process, :country_c1, go.country,
                      go.id, go.country, :counts_eusr
               FROM msg, go WHERE :counts_tsr),
           event AS (
               INSERT INTO events (company_id, kind, payload, trace_context)
               SELECT go.id, 'document.received', jsonb_set(:event::jsonb, '{message_id}', to_jsonb(msg.id)),
                      :trace_context
               FROM msg, go WHERE NOT go.held)
    SELECT (SELECT receipt FROM first) AS first_receipt, EXISTS (SELECT FROM company) AS serviced,
           (SELECT id FROM msg) AS id, (SELECT processing FROM go) AS processing"""


class _NotStored(Exception):
    """The statement stored nothing: roll back what was copied in before it."""

    def __init__(self, outcome: Stored) -> None:
        self.outcome = outcome


async def store_inbound(
    pool: asyncpg.Pool, record: InboundRecord, sbd: bytes | Spool, message: bytes | Spool, receipt: bytes
) -> Stored:
    """Store the document, the message as evidence, its metadata, a mailbox entry and a
    "document.received" event in one transaction, unless the message came before (same
    MessageId from the same access point, even one racing this call: the first receipt is
    returned) or no verified company receives its document type and process as its receiver.
    The checks and the writes are one statement: one round trip, one commit.

    Spooled document and message (large ones) are streamed in with COPY first, in the same
    transaction, never held in memory (rolled back when the statement stores nothing)."""
    spooled = isinstance(sbd, Spool) or isinstance(message, Spool)
    doc = sbd.sha256 if isinstance(sbd, Spool) else sha256(sbd)
    evidence = message.sha256 if isinstance(message, Spool) else sha256(message)
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
    content = record.content
    values = {
        "as4_message_id": record.as4_message_id,
        "sending_ap": record.sending_ap,
        "sender_cert_subject": record.sender_cert_subject,
        "conversation_id": record.conversation_id,
        "sender_scheme": record.sender[0],
        "sender_value": record.sender[1],
        "receiver_scheme": record.receiver[0],
        "receiver_value": record.receiver[1],
        "document_type": record.document_type,
        "process": record.process,
        "country_c1": record.country_c1,
        "document_sha256": doc,
        "payload_bytes": sbd.size if isinstance(sbd, Spool) else len(sbd),
        "message_bytes": message.size if isinstance(message, Spool) else len(message),
        "receipt": receipt,
        "sent_at": record.sent_at,
        "instance_identifier": record.instance_identifier,
        "message_sha256": evidence,
        "document_id": record.document_id,
        "kind": record.kind,
        "status_held": MessageStatus.PENDING,
        "status_stored": MessageStatus.STORED,
        "processing_pending": ProcessingState.PENDING,
        "processing_done": ProcessingState.DONE,
        "held_when": list(record.held_when),
        "processing_when": list(record.processing_when),
        "mls_to": record.mls_to,
        "mls_type": record.mls_type,
        # not columns of inbound_messages
        "document": b"" if isinstance(sbd, Spool) else sbd,
        "message": b"" if isinstance(message, Spool) else message,
        "event": event,
        "counts_tsr": counts_tsr,
        "counts_eusr": counts_eusr,
        "trace_context": record.trace_context,
        "has_content": content is not None,
        "view_version": content.version if content else None,
        "number": content.number if content else None,
        "issue_date": content.issue_date if content else None,
        "due_date": content.due_date if content else None,
        "seller_name": content.seller_name if content else None,
        "buyer_name": content.buyer_name if content else None,
        "payable_amount": content.payable_amount if content else None,
        "currency": content.currency if content else None,
        "content": content.view if content else None,
    }
    args = [values[name] for name in _STORE_NAMES]
    try:
        if spooled:
            try:
                async with pool.acquire() as conn, conn.transaction():
                    # stored first, the documents conflict with the statement's own rows, which
                    # are then left out (ON CONFLICT DO NOTHING)
                    for part in (sbd, message):
                        if isinstance(part, Spool):
                            await put_spooled_document(conn, part)
                    outcome = _stored(await conn.fetchrow(_STORE, *args))
                    if not outcome.stored:
                        raise _NotStored(outcome)
                    return outcome
            except _NotStored as refused:
                return refused.outcome
        # One statement: its data-modifying parts commit together or not at all.
        return _stored(await pool.fetchrow(_STORE, *args))
    except asyncpg.UniqueViolationError:
        first = await find_inbound_receipt(pool, record.as4_message_id, record.sending_ap)
        return Stored(False, first_receipt=first or b"", raced=True)


def _stored(row: asyncpg.Record | None) -> Stored:
    assert row is not None
    first = row["first_receipt"]
    if first is not None:
        return Stored(False, first_receipt=bytes(first))
    if not row["serviced"]:
        return Stored(False, serviced=False)
    return Stored(True, processing=bool(row["processing"]))


@dataclass(frozen=True)
class PendingInbound:
    id: int
    company_id: uuid.UUID
    inbound_validation: str
    status: MessageStatus
    kind: str
    sending_ap: str
    sender: str  # scheme::value
    receiver: str
    instance_identifier: str
    document_id: str | None
    mls_to: str | None
    mls_type: str | None
    sbd: bytes
    positive_mls: str = "on_processing"  # the receiving company's: when a positive MLS goes out
    acknowledged: bool = False  # the company's ERP acknowledged it already

    @property
    def subject(self) -> MlsSubject:
        return MlsSubject(self.id, self.sending_ap, self.mls_to, self.instance_identifier)


@dataclass(frozen=True)
class MlsSubject:
    """What an MLS about a received message needs of it: where it came from, where the MLS
    goes (the envelope's MLS_TO, else the sending provider's SPID) and what it answers."""

    id: int
    sending_ap: str
    mls_to: str | None
    instance_identifier: str


async def claim_inbound_processing(pool: asyncpg.Pool, lease_seconds: float = 300.0) -> PendingInbound | None:
    """Take the next received message with work after its receipt; a claim whose worker died is
    taken again after the lease."""
    row = await pool.fetchrow(
        """WITH claimed AS (
               UPDATE inbound_messages m SET processing_until = now() + make_interval(secs => $1)
               WHERE m.id = (SELECT id FROM inbound_messages
                             WHERE processing = $2 AND (processing_until IS NULL OR processing_until < now())
                             ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
               RETURNING m.*)
           SELECT c.id, c.company_id, co.inbound_validation, c.status, c.kind, c.sending_ap,
                  c.sender_scheme || '::' || c.sender_value AS sender,
                  c.receiver_scheme || '::' || c.receiver_value AS receiver,
                  c.instance_identifier, c.document_id, c.mls_to, c.mls_type, d.content AS sbd,
                  co.positive_mls, EXISTS (SELECT 1 FROM mailbox_entries e
                                           WHERE e.message_id = c.id AND e.read_at IS NOT NULL) AS acknowledged
           FROM claimed c JOIN documents d ON d.sha256 = c.document_sha256
           JOIN companies co ON co.id = c.company_id""",
        lease_seconds,
        ProcessingState.PENDING,
    )
    return None if row is None else PendingInbound(**{**dict(row), "status": MessageStatus(row["status"])})


@dataclass(frozen=True)
class InboundOutcome:
    accepted: bool
    validation: str | None  # JSON
    mls_code: str | None
    answers_outbound_id: int | None
    mls_held: str | None = None  # a positive MLS waiting for the ERP's acknowledgement


async def finish_inbound_processing(conn: asyncpg.Connection, message: PendingInbound, outcome: InboundOutcome) -> bool:
    """Record the outcome; a message held out of the mailbox enters it now if accepted. False
    when another worker finished it first (the caller's transaction must then roll back)."""
    status = check_move(
        MessageStatus(message.status), MessageStatus.STORED if outcome.accepted else MessageStatus.REJECTED
    )
    done = check_move(ProcessingState.PENDING, ProcessingState.DONE)
    before = await conn.fetchval(
        """UPDATE inbound_messages SET processing = $6, processing_until = NULL,
               status = $2, validation = $3::jsonb, mls_code = $4, answers_outbound_id = $5, mls_held = $8
           WHERE id = $1 AND processing = $7
           RETURNING (SELECT status FROM inbound_messages WHERE id = $1)""",
        message.id,
        status,
        outcome.validation,
        outcome.mls_code,
        outcome.answers_outbound_id,
        done,
        ProcessingState.PENDING,
        outcome.mls_held,
    )
    if before is None:
        return False
    if before == MessageStatus.PENDING and outcome.accepted:
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


_TAKE_HELD_ACKNOWLEDGED = """
    UPDATE inbound_messages m SET mls_held = NULL, mls_code = $3
    FROM mailbox_entries e
    WHERE e.id = $1 AND e.company_id = $2 AND m.id = e.message_id AND m.mls_held IS NOT NULL
    RETURNING m.id, m.sending_ap, m.mls_to, m.instance_identifier"""
_TAKE_HELD_DUE = """
    UPDATE inbound_messages m SET mls_held = NULL, mls_code = $2
    WHERE m.id IN (SELECT id FROM inbound_messages WHERE mls_held IS NOT NULL AND received_at <= $1
                   ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
    RETURNING m.id, m.sending_ap, m.mls_to, m.instance_identifier"""


async def take_held_mls_acknowledged(
    conn: asyncpg.Connection, company_id: uuid.UUID, entry_id: int, code: str
) -> MlsSubject | None:
    """The held positive MLS of a mailbox entry, taken (recorded as ``code``) to be sent now
    that the company acknowledged the document; None when none is held (sent already, or none
    owed). Run in the transaction that queues the MLS."""
    row = await conn.fetchrow(_TAKE_HELD_ACKNOWLEDGED, entry_id, company_id, code)
    return None if row is None else MlsSubject(**dict(row))


async def take_held_mls_due(
    conn: asyncpg.Connection, received_before: datetime, code: str, limit: int
) -> list[MlsSubject]:
    """Held positive MLS of messages received before ``received_before`` (their deadline nears),
    taken (recorded as ``code``) to be sent now; concurrent callers take different ones."""
    rows = await conn.fetch(_TAKE_HELD_DUE, received_before, code, limit)
    return [MlsSubject(**dict(r)) for r in rows]


_PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def _bind(sql: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` placeholders to asyncpg's ``$n`` (done once per statement), so a long statement
    names what it binds; returns the statement and the names in parameter order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(number, sql), tuple(names)


_STORE, _STORE_NAMES = _bind(_STORE_SQL)


@dataclass(frozen=True)
class ReceivedForResponse:
    """A received document in a company's mailbox, with what answering it needs."""

    id: int  # inbound_messages.id
    instance_identifier: str
    kind: str
    response_outbound_id: int | None  # set once it was answered
    content: bytes  # the stored envelope
    country: str  # the receiving company's


async def received_for_response(pool: asyncpg.Pool, entry_id: int, company_id: uuid.UUID) -> ReceivedForResponse | None:
    """The document behind one of the company's mailbox entries; None when it is not theirs."""
    row = await pool.fetchrow(
        """SELECT m.id, m.instance_identifier, m.kind, m.response_outbound_id, d.content, c.country
           FROM mailbox_entries e JOIN inbound_messages m ON m.id = e.message_id
           JOIN documents d ON d.sha256 = m.document_sha256 JOIN companies c ON c.id = e.company_id
           WHERE e.id = $1 AND e.company_id = $2""",
        entry_id,
        company_id,
    )
    if row is None:
        return None
    values = dict(row)
    values["content"] = bytes(values["content"])
    return ReceivedForResponse(**values)


async def lock_response(conn: asyncpg.Connection, inbound_id: int) -> int | None:
    """Lock the received message for answering (until the transaction ends); the outbound id
    of an answer sent meanwhile, or None when it is still unanswered."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT response_outbound_id FROM inbound_messages WHERE id = $1 FOR UPDATE", inbound_id
    )


async def set_response(conn: asyncpg.Connection, inbound_id: int, outbound_id: int, code: str) -> None:
    """The received message is answered by ``outbound_id`` with ``code``."""
    await conn.execute(
        "UPDATE inbound_messages SET response_outbound_id = $2, response_code = $3 WHERE id = $1",
        inbound_id,
        outbound_id,
        code,
    )


@dataclass(frozen=True)
class MailboxLine:
    """A mailbox entry as the ``mailbox`` command shows it (content None once archived)."""

    id: int
    company: str
    as4_message_id: str
    sender_value: str
    receiver_value: str
    document_type: str
    process: str
    country_c1: str | None
    sending_ap: str
    received_at: datetime
    payload_bytes: int
    read_at: datetime | None
    content: bytes | None


async def mailbox_lines(pool: asyncpg.Pool, *, entry_id: int | None, limit: int) -> list[MailboxLine]:
    """Every company's mailbox entries, newest first (or only ``entry_id``), for the operator."""
    rows = await pool.fetch(
        """SELECT e.id, c.name AS company, m.as4_message_id, m.sender_value, m.receiver_value,
                  m.document_type, m.process, m.country_c1, m.sending_ap, m.received_at,
                  m.payload_bytes, e.read_at, d.content
           FROM mailbox_entries e
           JOIN inbound_messages m ON m.id = e.message_id
           JOIN companies c ON c.id = e.company_id
           JOIN documents d ON d.sha256 = m.document_sha256
           WHERE ($1::bigint IS NULL OR e.id = $1)
           ORDER BY e.id DESC LIMIT $2""",
        entry_id,
        limit,
    )
    return [MailboxLine(**dict(r)) for r in rows]


# -- the console's message trace ---------------------------------------------------------------------


@dataclass(frozen=True)
class TracedReceived:
    """A received document as the console traces it: the mailbox entry, its company, and
    which evidence is kept (the AS4 message as received and the receipt we answered with)."""

    received: ReceivedDocument
    company_id: uuid.UUID
    document_id: str | None
    conversation_id: str
    instance_identifier: str | None
    sender_cert_subject: str
    sent_at: datetime
    mls_type: str | None
    has_message: bool
    has_receipt: bool


_TRACE_SELECT = _RECEIVED_SELECT.replace(
    "\n    FROM mailbox_entries e",
    ", e.company_id, m.document_id, m.conversation_id, m.instance_identifier, m.sender_cert_subject, m.sent_at,"
    " m.mls_type, m.message_sha256 IS NOT NULL AS has_message,"
    " m.receipt IS NOT NULL AND length(m.receipt) > 0 AS has_receipt\n    FROM mailbox_entries e",
)
_TRACE_FIELDS = ("company_id", "document_id", "conversation_id", "instance_identifier", "sender_cert_subject",
                 "sent_at", "mls_type", "has_message", "has_receipt")  # fmt: skip
_TRACE_ONE = _TRACE_SELECT + " WHERE e.id = $1 AND e.company_id = ANY($2::uuid[])"
_TRACE_PAGE = (
    _TRACE_SELECT
    + """ WHERE e.company_id = ANY($1::uuid[])
          AND ($2::text IS NULL OR m.document_id = $2 OR m.as4_message_id = $2)
          AND ($3::text IS NULL OR strpos(lower(m.receiver_scheme || '::' || m.receiver_value), lower($3)) > 0)
          AND ($4::text IS NULL OR strpos(lower(m.sender_scheme || '::' || m.sender_value), lower($4)) > 0)
          AND ($5::boolean IS NULL OR (m.response_code IS NOT NULL) = $5)
          AND ($6::timestamptz IS NULL OR m.received_at >= $6) AND ($7::timestamptz IS NULL OR m.received_at < $7)
        ORDER BY e.id DESC LIMIT $8"""
)


def _traced(row: asyncpg.Record) -> TracedReceived:
    fields = dict(row)
    extra = {name: fields.pop(name) for name in _TRACE_FIELDS}
    return TracedReceived(_received(fields), **extra)  # type: ignore[arg-type]


async def traced_received(
    pool: asyncpg.Pool | asyncpg.Connection, company_ids: list[uuid.UUID], entry_id: int
) -> TracedReceived | None:
    """One mailbox entry of one of ``company_ids`` (the caller's tenants), else None."""
    row = await pool.fetchrow(_TRACE_ONE, entry_id, company_ids)
    return None if row is None else _traced(row)


async def search_received(
    pool: asyncpg.Pool | asyncpg.Connection,
    company_ids: list[uuid.UUID],
    *,
    number: str | None = None,
    participant: str | None = None,
    partner: str | None = None,
    answered: bool | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
) -> list[TracedReceived]:
    """Documents the companies received, newest first: ``number`` is the business document's
    ID or the AS4 MessageId, ``participant`` (the receiver) and ``partner`` (the sender) match
    any part of the participant id; ``answered``: whether a business response was sent."""
    rows = await pool.fetch(_TRACE_PAGE, company_ids, number, participant, partner, answered, start, end, limit)
    return [_traced(r) for r in rows]


@dataclass(frozen=True)
class ReceivedEvidence:
    """The AS4 message as received and the signed receipt we answered with (None when not kept
    in the database, e.g. moved to the archive under ``archive_key``)."""

    message: bytes | None
    receipt: bytes | None
    archive_key: str | None


_EVIDENCE = """
    SELECT d.content AS message, m.receipt, m.archive_key
    FROM mailbox_entries e JOIN inbound_messages m ON m.id = e.message_id
    LEFT JOIN documents d ON d.sha256 = m.message_sha256
    WHERE e.id = $1 AND e.company_id = ANY($2::uuid[])"""


async def received_evidence(
    pool: asyncpg.Pool | asyncpg.Connection, company_ids: list[uuid.UUID], entry_id: int
) -> ReceivedEvidence | None:
    row = await pool.fetchrow(_EVIDENCE, entry_id, company_ids)
    if row is None:
        return None
    message, receipt = row["message"], row["receipt"]
    return ReceivedEvidence(
        None if message is None else bytes(message), bytes(receipt) if receipt else None, row["archive_key"]
    )
