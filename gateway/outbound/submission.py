"""The one path that sends a document: derive its envelope, check it, queue the job.

The API, the CLI, the Message Level Status sender and the reports all call :func:`submit`.
What is submitted is parsed once (:func:`~gateway.documents.envelope.read_submitted`); the
envelope is derived from that tree and wrapped around it without parsing again. The document
and its job are stored in one transaction and the workers are woken.

A business document submitted through the API or the CLI is refused as a
:class:`~gateway.outbound.errors.DuplicateDocument` when the same document (sender, receiver,
document type, ID and IssueDate) was submitted within the duplicate window and that job has not
failed: an ERP that retries without an Idempotency-Key does not deliver it twice. What the
gateway sends itself (MLS, reports, answers) has its own identifiers and is not checked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

import as4
import smp
from gateway.core import tracing
from gateway.directory import queries as directory_queries
from gateway.documents.business import BusinessDocument
from gateway.documents.content import ContentRow, read_content
from gateway.documents.envelope import Envelope, SbdhError, build_sbd, is_sbd, read_envelope, read_submitted, sbd_frame
from gateway.documents.spool import Spool, skeleton_of, wrap_document
from gateway.outbound import queries
from gateway.outbound.errors import DuplicateDocument, SubmissionError

__all__ = [
    "NOTIFY_CHANNEL",
    "Derived",
    "DuplicateDocument",
    "SubmissionError",
    "SubmitRequest",
    "SubmittedJob",
    "business_key",
    "derive_spooled",
    "derive_submission",
    "submit",
    "submit_document",
]

NOTIFY_CHANNEL = "outbound_ready"
MLS_TYPES = ("FAILURE_ONLY", "ALWAYS_SEND")
CHECKED_KINDS = ("business", "response")  # the kinds a resubmission is looked for


@dataclass(frozen=True)
class Derived:
    """A document ready to queue: its whole SBD and what the job records of it. A large
    document's SBD is a spool file (see :func:`derive_spooled`), and ``business`` then holds a
    skeleton of it (texts cut short): enough for its identifiers, not for validation."""

    sbd: bytes | Spool
    sender: smp.ParticipantId
    receiver: smp.ParticipantId
    document_type: smp.DocumentTypeId
    process: smp.ProcessId
    country_c1: str
    instance_identifier: str
    document_id: str = ""
    kind: str = "business"
    business: BusinessDocument | None = None  # the parsed document, for steps after this one
    mls_type: str | None = None  # the envelope's MLS_TYPE (None: absent, FAILURE_ONLY)


@dataclass(frozen=True)
class SubmitRequest:
    """What to send and how: the document (bytes, or already derived), what the envelope
    should say where the document does not tell, and the job's options."""

    document: bytes | BusinessDocument | Spool | Derived
    retry_window: float
    sender: str | None = None
    receiver: str | None = None
    document_type: str | None = None
    process: str | None = None
    country_c1: str | None = None
    mls_type: str | None = None
    company_id: uuid.UUID | None = None
    endpoint_url: str | None = None
    endpoint_cert: x509.Certificate | None = None
    answers_inbound_id: int | None = None
    duplicate_window: float | None = None  # seconds to look back for the same document; None: not checked
    # The same message for another receiver, sent instead when this one's receiver cannot be
    # reached (an MLS to the sending provider's SPID when the envelope's MLS_TO fails).
    fallback: SubmitRequest | None = None


@dataclass(frozen=True)
class SubmittedJob:
    job_id: int
    derived: Derived
    sent: queries.SentDocument | None = None  # the job as stored, as the API shows it


# Checks a caller runs on the derived document before it is queued; returns the validation
# report to record with the job (JSON), or raises to refuse.
Check = Callable[[Derived], Awaitable[str | None]]


def _from_envelope(envelope: Envelope, business: BusinessDocument, sbd: bytes | Spool) -> Derived:
    assert envelope.country_c1 is not None  # required when reading for sending
    return Derived(
        sbd=sbd,
        sender=smp.ParticipantId.parse(envelope.sender),
        receiver=smp.ParticipantId.parse(envelope.receiver),
        document_type=smp.DocumentTypeId.of(envelope.document_type_scheme, envelope.document_type),
        process=smp.ProcessId.of(envelope.process_scheme, envelope.process),
        country_c1=envelope.country_c1,
        instance_identifier=envelope.instance_identifier,
        document_id=business.read.document_id,
        kind=business.read.kind,
        business=business,
        mls_type=envelope.mls_type,
    )


def _as_bytes(document: bytes | BusinessDocument) -> bytes:
    """A ready SBD is queued as it was submitted (serialized only if it came as a tree)."""
    if isinstance(document, bytes):
        return document
    if document.data is not None:
        return document.data
    return bytes(etree.tostring(document.root, xml_declaration=True, encoding="UTF-8"))


def derive_submission(
    document: bytes | BusinessDocument | Spool,
    *,
    sender: str | None = None,
    receiver: str | None = None,
    document_type: str | None = None,
    process: str | None = None,
    country_c1: str | None = None,
    mls_type: str | None = None,
) -> Derived:
    """Wrap a bare UBL document in a Peppol envelope (or take a ready SBD as it is), deriving
    what is not given: participants from the parties' EndpointIDs, the document type from the
    root element and CustomizationID, the process from ProfileID, C1's country from the sender's
    address. Raises :class:`SubmissionError` naming the field it could not determine.

    A :class:`Spool` (a large document) is read as a skeleton and its SBD written by streaming
    (:func:`derive_spooled`); it blocks for as long as reading the file takes."""
    if isinstance(document, Spool):
        return derive_spooled(
            document, sender=sender, receiver=receiver, document_type=document_type, process=process,
            country_c1=country_c1, mls_type=mls_type,
        )  # fmt: skip
    try:
        envelope, business = read_submitted(document)
        if envelope is not None:
            return _from_envelope(envelope, business, _as_bytes(document))
    except as4.As4Error as exc:
        raise SubmissionError("document", exc.reason) from None
    except SbdhError as exc:
        raise SubmissionError("document", f"invalid Peppol envelope: {exc}") from None
    except smp.IdentifierError as exc:
        raise SubmissionError(exc.field, str(exc)) from None

    return _derive_bare(
        business, None, sender=sender, receiver=receiver, document_type=document_type, process=process,
        country_c1=country_c1, mls_type=mls_type,
    )  # fmt: skip


def derive_spooled(
    document: Spool,
    *,
    sender: str | None = None,
    receiver: str | None = None,
    document_type: str | None = None,
    process: str | None = None,
    country_c1: str | None = None,
    mls_type: str | None = None,
) -> Derived:
    """:func:`derive_submission` for a document too large to hold: parsed into a skeleton
    (:func:`~gateway.documents.spool.skeleton_of`, long texts cut short), never into its whole
    tree. A ready SBD is queued as it is (its envelope checked on the skeleton); a bare document
    is copied byte for byte between the halves of its envelope (:func:`sbd_frame`) into
    ``<spool file>.sbd``, which the caller removes with the upload."""
    try:
        root = skeleton_of(document.chunks())
    except ValueError as exc:
        raise SubmissionError("document", f"the document is not well-formed XML: {exc}") from None
    try:
        if is_sbd(root):
            envelope, business = read_envelope(root)
            return _from_envelope(envelope, business, document)
    except SbdhError as exc:
        raise SubmissionError("document", f"invalid Peppol envelope: {exc}") from None
    except smp.IdentifierError as exc:
        raise SubmissionError(exc.field, str(exc)) from None
    return _derive_bare(
        BusinessDocument(root), document, sender=sender, receiver=receiver, document_type=document_type,
        process=process, country_c1=country_c1, mls_type=mls_type,
    )  # fmt: skip


def _derive_bare(
    business: BusinessDocument,
    spool: Spool | None,
    *,
    sender: str | None,
    receiver: str | None,
    document_type: str | None,
    process: str | None,
    country_c1: str | None,
    mls_type: str | None,
) -> Derived:
    """The envelope of a bare document, derived from what is not given, wrapped around it (or,
    for a spooled document, around a copy of its bytes)."""
    sender = sender or business.sender_endpoint
    receiver = receiver or business.receiver_endpoint
    if not sender:
        raise SubmissionError("sender", "not given and no sender EndpointID in the document")
    if not receiver:
        raise SubmissionError("receiver", "not given and no receiver EndpointID in the document")
    if document_type is None:
        customization = business.customization
        if not customization or not business.namespace:
            raise SubmissionError("document_type", "not given and the document has no CustomizationID")
        version = business.ubl_version or "2.1"
        document_type = f"{business.namespace}::{business.name}##{customization}::{version}"
    if mls_type not in (None, *MLS_TYPES):
        raise SubmissionError("mls_type", "MLS type is FAILURE_ONLY or ALWAYS_SEND")
    process = process or business.profile or None
    if not process:
        raise SubmissionError("process", "not given and the document has no ProfileID")
    country_c1 = country_c1 or business.sender_country
    if not country_c1:
        raise SubmissionError("country_c1", "not given and the sender has no country in the document")
    try:
        sender_id = smp.ParticipantId.parse(sender)
        receiver_id = smp.ParticipantId.parse(receiver)
        doc_id = smp.DocumentTypeId.parse(document_type)
        process_id = smp.ProcessId.parse(process)
    except smp.IdentifierError as exc:
        raise SubmissionError(exc.field.replace(" ", "_"), str(exc)) from None
    instance = str(uuid.uuid4())
    names: dict[str, Any] = {
        "sender": sender_id.value, "receiver": receiver_id.value, "document_type": doc_id.value,
        "document_type_scheme": doc_id.scheme, "process": process_id.value, "process_scheme": process_id.scheme,
        "country_c1": country_c1, "instance_identifier": instance, "mls_type": mls_type,
    }  # fmt: skip
    sbd: bytes | Spool
    if spool is None:
        sbd = build_sbd(business, **names)
    else:
        prefix, suffix = sbd_frame(business.namespace, business.name, **names)
        try:
            sbd = wrap_document(spool, prefix, suffix)
        except ValueError as exc:
            raise SubmissionError("document", str(exc)) from None
    read = business.read
    return Derived(
        sbd, sender_id, receiver_id, doc_id, process_id, country_c1, instance, read.document_id, read.kind, business,
        mls_type,
    )  # fmt: skip


def derive(request: SubmitRequest) -> Derived:
    """The request's document with its envelope (derived once, or as the caller derived it)."""
    if isinstance(request.document, Derived):
        return request.document
    return derive_submission(
        request.document, sender=request.sender, receiver=request.receiver, document_type=request.document_type,
        process=request.process, country_c1=request.country_c1, mls_type=request.mls_type,
    )  # fmt: skip


def business_key(derived: Derived) -> bytes | None:
    """What identifies a business document for finding it submitted again: SHA-256 of sender,
    receiver, document type, ID and IssueDate; None for what is not checked (an MLS, a report,
    a document without ID or IssueDate)."""
    business = derived.business
    if derived.kind not in CHECKED_KINDS or business is None:
        return None
    issued = business.issue_date
    if not derived.document_id or not issued:
        return None
    parts = (str(derived.sender), str(derived.receiver), str(derived.document_type), derived.document_id, issued)
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


_OFFLOAD_CONTENT_BYTES = 256 * 1024  # read bigger documents' content views in a thread


async def _content_of(derived: Derived) -> ContentRow | None:
    """The content view, read from the tree parsed for the envelope, kept with the job."""
    if derived.business is None:
        return None
    size = derived.sbd.size if isinstance(derived.sbd, Spool) else len(derived.sbd)
    if size > _OFFLOAD_CONTENT_BYTES:  # a spooled document's tree is its skeleton: long texts cut
        return await asyncio.to_thread(read_content, derived.business)
    return read_content(derived.business)


async def _derive_for_company(db: asyncpg.Pool | asyncpg.Connection, request: SubmitRequest) -> Derived:
    """:func:`derive`, with the company's registered country for C1 when neither the request nor
    the document says it (a response document has no postal address under the BIS rules)."""

    async def derived(request: SubmitRequest) -> Derived:
        if isinstance(request.document, Spool):  # reading a large file must not hold up the loop
            return await asyncio.to_thread(derive, request)
        return derive(request)

    try:
        return await derived(request)
    except SubmissionError as exc:
        country = None
        if exc.field == "country_c1" and request.company_id is not None:
            country = await directory_queries.company_country(db, request.company_id)
        if country is None:
            raise
    return await derived(dataclasses.replace(request, country_c1=country))


async def submit(
    db: asyncpg.Pool | asyncpg.Connection, request: SubmitRequest, *, check: Check | None = None
) -> SubmittedJob:
    """Send a document: derive its envelope, run the caller's ``check``, queue the job and wake
    the workers. With a connection the job joins the caller's transaction (the wake-up is
    delivered at its commit). Raises :class:`SubmissionError` before anything is stored, and
    :class:`DuplicateDocument` for a resubmission when ``request.duplicate_window`` is set."""
    derived = await _derive_for_company(db, request)
    validation = await check(derived) if check is not None else None
    key = business_key(derived) if request.duplicate_window is not None else None
    cert = request.endpoint_cert.public_bytes(Encoding.DER) if request.endpoint_cert else None
    fallback = None
    if request.fallback is not None:
        other = derive(request.fallback)
        if isinstance(other.sbd, Spool):
            raise SubmissionError("document", "a fallback message is sent from memory: it must be small")
        fallback = queries.Fallback(str(other.receiver), other.sbd, other.instance_identifier)
    submission = queries.OutboundSubmission(
        sender=str(derived.sender),
        receiver=str(derived.receiver),
        document_type=str(derived.document_type),
        process=str(derived.process),
        country_c1=derived.country_c1,
        instance_identifier=derived.instance_identifier,
        sbd=derived.sbd,
        as4_message_id=as4.new_message_id("peppol-gateway"),
        conversation_id=str(uuid.uuid4()),
        give_up_at=datetime.now(UTC) + timedelta(seconds=request.retry_window),
        company_id=request.company_id,
        endpoint_url=request.endpoint_url,
        endpoint_cert=cert,
        document_id=derived.document_id or None,
        kind=derived.kind,
        answers_inbound_id=request.answers_inbound_id,
        validation=validation,
        trace_context=tracing.traceparent(),
        business_key=key,
        mls_type=derived.mls_type,
        fallback=fallback,
        content=await _content_of(derived),
    )
    if key is None:
        stored = await queries.submit_outbound(db, submission, notify=NOTIFY_CHANNEL)
        return SubmittedJob(stored.job_id, derived, stored.job)
    assert request.duplicate_window is not None
    since = datetime.now(UTC) - timedelta(seconds=request.duplicate_window)
    if isinstance(db, asyncpg.Connection):
        stored = await _queue_once(db, submission, key, since)
    else:
        async with db.acquire() as conn, conn.transaction():
            stored = await _queue_once(conn, submission, key, since)
    return SubmittedJob(stored.job_id, derived, stored.job)


async def _queue_once(
    conn: asyncpg.Connection, submission: queries.OutboundSubmission, key: bytes, since: datetime
) -> queries.Submitted:
    """Queue the job unless the same document was queued since ``since`` (under the business
    key's lock, held to the end of the transaction: concurrent submissions see each other). In
    the caller's transaction when there is one (nothing is written before the check, so there
    is nothing to roll back to), else in a transaction of its own."""
    if not conn.is_in_transaction():
        async with conn.transaction():
            return await _queue_once(conn, submission, key, since)
    if isinstance(submission.sbd, Spool):  # the spool is copied in first: look before copying
        earlier = await queries.earlier_submission(conn, key, since)
        if earlier is not None:
            raise DuplicateDocument(earlier)
        return await queries.submit_outbound(conn, submission, notify=NOTIFY_CHANNEL)
    await queries.lock_business_key(conn, key)
    stored = await queries.submit_outbound(conn, submission, notify=NOTIFY_CHANNEL, unless_since=since)
    if stored.earlier is not None:
        raise DuplicateDocument(stored.earlier)
    return stored


async def submit_document(
    pool: asyncpg.Pool,
    derived: Derived,
    *,
    retry_window: float,
    company_id: uuid.UUID | None = None,
    endpoint_url: str | None = None,
    endpoint_cert: x509.Certificate | None = None,
    answers_inbound_id: int | None = None,
    conn: asyncpg.Connection | None = None,
) -> int:
    """:func:`submit` for a document derived already; returns the job id."""
    request = SubmitRequest(
        derived, retry_window, company_id=company_id, endpoint_url=endpoint_url, endpoint_cert=endpoint_cert,
        answers_inbound_id=answers_inbound_id,
    )  # fmt: skip
    return (await submit(conn if conn is not None else pool, request)).job_id
