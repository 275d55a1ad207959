"""Sending, status, mailbox polling, download and acknowledgement: ``/v1/documents`` and
``/v1/invoices`` (the same resources, limited to invoices and credit notes).

Ids are ``s<n>`` for documents the company sent and ``r<n>`` for documents it received.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from opentelemetry import trace

from gateway.api.accounts import RUNTIME, _parse_time
from gateway.api.auth import Principal, require
from gateway.api.envelope import ApiError, ok
from gateway.api.idempotency import Created, create_once, request_digest
from gateway.api.keys import SERVICES
from gateway.directory import queries as directory_queries
from gateway.documents import queries as documents_queries
from gateway.documents.business import BusinessDocument
from gateway.documents.content import VIEW_VERSION, content_json, content_row, extract
from gateway.documents.envelope import SbdhError, read_sbd
from gateway.documents.render import render_html
from gateway.documents.spool import CHUNK, LARGE_DOCUMENT_BYTES, Spool, SpoolWriter
from gateway.duties.archive import read_archived
from gateway.duties.archive_store import ArchiveError
from gateway.duties.validation import Validator, too_large_to_validate
from gateway.inbound import queries as inbound_queries
from gateway.outbound import queries as outbound_queries
from gateway.outbound.states import OutboundState
from gateway.outbound.submission import Derived, DuplicateDocument, SubmissionError, SubmitRequest, submit

__all__ = ["add_document_routes"]

# Documents up to this size are validated even when spooled (invoices with PDF attachments of a
# few megabytes are common); the rule layers hold the whole tree, several times the document.
VALIDATION_MAX_BYTES = 8 * 1024 * 1024  # below libxml2's 10 MB limit on one text node

_INVOICE_ROOTS = (
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##%",
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2::CreditNote##%",
)
_ALL = ("%",)
MAX_PAGE = 500


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.app[RUNTIME].pool


def _kinds(request: web.Request) -> list[str]:
    return list(_INVOICE_ROOTS if request.path.startswith("/v1/invoices") else _ALL)


async def _sending_company(
    request: web.Request, principal: Principal
) -> tuple[uuid.UUID, directory_queries.SendingCompany]:
    """The calling company, verified, with what sending checks of it (one statement)."""
    if principal.company_id is None:
        raise ApiError(403, "insufficient_scope", "documents are sent and received by companies")
    company = await directory_queries.sending_company(_pool(request), principal.company_id)
    if company is None or not company.verified:
        raise ApiError(403, "company_not_verified", "an operator must verify the company first")
    return principal.company_id, company


class _Collector:
    """An upload read in chunks: in memory up to :data:`LARGE_DOCUMENT_BYTES`, then in a spool
    file (when spooling is allowed); refused past the payload limit."""

    def __init__(self, limit: int, spool: bool) -> None:
        self.limit, self.spool = limit, spool
        self._chunks: list[bytes] = []
        self._held = 0
        self._writer: SpoolWriter | None = None

    def add(self, chunk: bytes) -> None:
        self._held += len(chunk)
        if self._held > self.limit:
            self.discard()
            raise ApiError(413, "payload_too_large", f"the document is larger than {self.limit} bytes")
        if self._writer is not None:
            self._writer.write(chunk)
            return
        self._chunks.append(chunk)
        if self.spool and self._held > LARGE_DOCUMENT_BYTES:
            self._writer = SpoolWriter()
            for held in self._chunks:
                self._writer.write(held)
            self._chunks = []

    @property
    def empty(self) -> bool:
        return self._held == 0

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.discard()
            self._writer = None
        self._chunks = []

    def result(self) -> bytes | Spool:
        return self._writer.close() if self._writer is not None else b"".join(self._chunks)


async def _upload(request: web.Request, *, spool: bool = False) -> tuple[bytes | Spool, dict[str, str]]:
    """The document from a multipart upload (field ``file``) or a raw XML body, plus form fields.
    Read in chunks; with ``spool`` a document above :data:`LARGE_DOCUMENT_BYTES` comes back as a
    spool file (the caller removes it), else the document is in memory."""
    fields: dict[str, str] = {}
    limit = request.app[RUNTIME].settings.max_payload_bytes
    collector = _Collector(limit, spool)
    found = False
    try:
        if request.content_type.startswith("multipart/"):
            try:
                reader = await request.multipart()
                async for part in reader:
                    if part.name == "file":  # type: ignore[union-attr]
                        found = True
                        encoded = part.headers.get("Content-Transfer-Encoding", "binary").lower()  # type: ignore[union-attr]
                        if encoded not in ("binary", "8bit", "7bit") or "Content-Encoding" in part.headers:  # type: ignore[union-attr]
                            collector.add(bytes(await part.read(decode=True)))  # type: ignore[union-attr]
                            continue
                        while chunk := await part.read_chunk(CHUNK):  # type: ignore[union-attr]
                            collector.add(bytes(chunk))
                    elif part.name:  # type: ignore[union-attr]
                        fields[part.name] = (await part.text()).strip()  # type: ignore[union-attr]
            except (ValueError, AssertionError, HttpProcessingError) as exc:
                raise ApiError(400, "validation_error", f"malformed multipart body: {exc}") from None
            if not found:
                raise ApiError(400, "validation_error", "upload the document in a field named file", {"field": "file"})
        else:
            async for chunk in request.content.iter_chunked(CHUNK):
                collector.add(chunk)
            if collector.empty:  # a body handed over already read (an MCP tool's request)
                collector.add(await request.read())
            fields = {k: v for k, v in request.query.items()}
    except BaseException:
        collector.discard()
        raise
    document = collector.result()
    if isinstance(document, bytes) and not document:
        raise ApiError(400, "validation_error", "the document is empty", {"field": "file"})
    return document, fields


def _sending_checks(
    request: web.Request, db: asyncpg.Connection, company_id: uuid.UUID, company: directory_queries.SendingCompany
) -> Callable[[Derived], Awaitable[str | None]]:
    """What the API checks of a derived document before it is queued: the resource's document
    types, the company's validation policy, and that the sender is the company's own (as
    ``company`` was read before the request's transaction). Returns the findings to record when
    it is sent anyway. What it still has to read, it reads on ``db``, the connection of the
    sending transaction (a second pooled connection could wait on the retries it holds up)."""

    async def check(derived: Derived) -> str | None:
        if request.path.startswith("/v1/invoices") and not any(
            str(derived.document_type).startswith(root[:-1]) for root in _INVOICE_ROOTS
        ):
            raise ApiError(400, "validation_error", "only invoices and credit notes here; use /v1/documents")

        validator = request.app[RUNTIME].validator
        recorded: str | None = None
        if validator is not None:
            sbd = derived.sbd
            if isinstance(sbd, Spool) and sbd.size > VALIDATION_MAX_BYTES:
                # see too_large_to_validate: the rule layers need the whole tree in memory
                root = derived.business.root.tag if derived.business is not None else ""
                result = too_large_to_validate(root, sbd.size, VALIDATION_MAX_BYTES)
            elif isinstance(sbd, Spool):  # spooled, but small enough to validate as a whole
                result = await validator.validate(await asyncio.to_thread(sbd.path.read_bytes))
            else:
                result = await validator.validate(sbd)
            policy = company.outbound_validation
            if not result.validated and policy != "warn":
                reason = next(iter(result.layers_skipped.values()), "a rule layer could not run")
                raise ApiError(
                    503, "validation_unavailable",
                    f"the document cannot be validated ({reason}) and this company's policy is reject",
                    {"validation": result.as_json()},
                )  # fmt: skip
            if not result.valid and policy != "warn":
                errors = result.as_json()["errors"]
                rules = ", ".join(e["rule_id"] for e in errors[:10])
                raise ApiError(
                    400, "validation_error", f"the document breaks: {rules}", {"validation": result.as_json()}
                )
            if result.findings or isinstance(sbd, Spool):  # a large one keeps its "not validated"
                report = result.as_json()
                report["warnings"] = report["errors"] + report["warnings"]  # sent anyway: all are warnings now
                recorded = json.dumps(report)
        owned = company.owns(derived.sender.scheme, derived.sender.key)
        if owned is None:  # a company with many participants: ask for this one
            owned = await directory_queries.owns_participant(db, company_id, derived.sender.scheme, derived.sender.key)
        if not owned:
            raise ApiError(
                400, "validation_error", f"the sender {derived.sender} is not a participant of this company",
                {"field": "sender"},
            )  # fmt: skip
        return recorded

    return check


def _upload_digest(request: web.Request, document: bytes | Spool, fields: dict[str, str]) -> bytes:
    """The request as an Idempotency-Key compares it: the document and the form fields or query
    parameters (not the raw multipart body, whose boundary changes with every try). A spooled
    document counts by its SHA-256 and size (it is spooled every time it is sent)."""
    part = document if isinstance(document, bytes) else b"spooled:%d:" % document.size + document.sha256
    return request_digest(request, part, json.dumps(sorted(fields.items())).encode())


async def send_document(request: web.Request) -> web.Response:
    """Queue a document (202 with its status). An Idempotency-Key replays the first answer; a
    document submitted again without one is refused (409 ``duplicate_document``) unless the
    company turned ``duplicate_check`` off."""
    principal = require(request, "documents:send")
    company_id, company = await _sending_company(request, principal)
    document, fields = await _upload(request, spool=True)
    try:
        return await _send_uploaded(request, principal, company_id, company, document, fields)
    finally:
        if isinstance(document, Spool):  # the upload and the SBD written next to it
            document.remove_with_wrapped()


async def _send_uploaded(
    request: web.Request, principal: Principal, company_id: uuid.UUID, company: directory_queries.SendingCompany,
    document: bytes | Spool, fields: dict[str, str],
) -> web.Response:  # fmt: skip
    pool = _pool(request)
    settings = request.app[RUNTIME].settings
    window = settings.duplicate_window or None
    if window is not None and not company.duplicate_check:
        window = None
    wanted = SubmitRequest(
        document, settings.retry_window, sender=fields.get("sender"),
        receiver=fields.get("receiver") or fields.get("recipient"), document_type=fields.get("document_type"),
        process=fields.get("process"), country_c1=fields.get("country"), mls_type=fields.get("mls_type"),
        company_id=company_id, duplicate_window=window,
    )  # fmt: skip

    async def queue(conn: asyncpg.Connection) -> Created:
        try:
            job = await submit(conn, wanted, check=_sending_checks(request, conn, company_id, company))
        except SubmissionError as exc:
            raise ApiError(400, "validation_error", exc.message, {"field": exc.field}) from None
        except DuplicateDocument as exc:
            earlier = f"s{exc.earlier_job_id}"
            message = f"the document was sent already as {earlier}; the company's duplicate_check allows resending"
            raise ApiError(409, "duplicate_document", message, {"document_id": earlier}) from None
        data = _sent_json(job.sent) if job.sent is not None else await _sent(conn, company_id, job.job_id)
        trace.get_current_span().set_attribute("peppol.document_id", data["id"])
        return Created(data, status=202)

    return await create_once(pool, request, principal, _upload_digest(request, document, fields), queue)


async def _sent(pool: asyncpg.Pool | asyncpg.Connection, company_id: uuid.UUID, job_id: int) -> dict[str, Any]:
    sent = await outbound_queries.sent_document(pool, company_id, job_id)
    if sent is None:
        raise ApiError(404, "not_found", "no such document")
    return _sent_json(sent)


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class DocumentStatus(StrEnum):
    """A document's status as the API names it: the outbound job's state (a retry is still
    ``sending``), then the receiver's MLS, or for a received document whether it was answered."""

    QUEUED = "queued"
    SENDING = "sending"
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"
    RECEIVED = "received"
    ANSWERED = "answered"


_API_STATUS = {
    OutboundState.QUEUED: DocumentStatus.QUEUED,
    OutboundState.SENDING: DocumentStatus.SENDING,
    OutboundState.RETRYING: DocumentStatus.SENDING,
    OutboundState.DELIVERED: DocumentStatus.DELIVERED,
    OutboundState.FAILED: DocumentStatus.FAILED,
}


def _sent_status(sent: outbound_queries.SentDocument) -> str:
    """queued/sending/failed while in transport; delivered with the receipt; accepted or rejected
    once the receiving access point's Message Level Status says so."""
    if sent.state == OutboundState.DELIVERED and sent.mls_code is not None:
        return DocumentStatus.REJECTED if sent.mls_code == "RE" else DocumentStatus.ACCEPTED
    return _API_STATUS[sent.state]


def _listing_fields(
    doc: outbound_queries.SentDocument | inbound_queries.ReceivedDocument,
) -> dict[str, Any]:
    """The content view's listing fields (null for what the document does not say)."""
    return {
        "number": doc.number,
        "issue_date": doc.issue_date.isoformat() if doc.issue_date else None,
        "due_date": doc.due_date.isoformat() if doc.due_date else None,
        "seller_name": doc.seller_name,
        "buyer_name": doc.buyer_name,
        "payable_amount": str(doc.payable_amount) if doc.payable_amount is not None else None,
        "currency": doc.currency,
    }


def _sent_json(sent: outbound_queries.SentDocument) -> dict[str, Any]:
    return {
        "id": f"s{sent.id}",
        "direction": "SENT",
        "status": _sent_status(sent),
        "kind": sent.kind,
        "mls": {"code": sent.mls_code, "reason": sent.mls_reason, "at": _stamp(sent.mls_at)} if sent.mls_code else None,
        "mls_flagged": json.loads(sent.mls_flagged) if sent.mls_flagged else None,
        "response": {"code": sent.response_code, "document": f"r{sent.response_entry_id}"}
        if sent.response_code
        else None,
        "answers": f"r{sent.answers_entry_id}" if sent.answers_entry_id else None,
        "warnings": (json.loads(sent.validation) or {}).get("warnings") if sent.validation else None,
        "sender": sent.sender,
        "receiver": sent.receiver,
        "document_type": sent.document_type,
        "process": sent.process,
        "as4_message_id": sent.as4_message_id,
        "attempts": sent.attempts,
        "error": {"code": sent.error_code, "reason": sent.last_error} if sent.state == OutboundState.FAILED else None,
        "created_at": _stamp(sent.created_at),
        "updated_at": _stamp(sent.updated_at),
        "delivered_at": _stamp(sent.delivered_at),
        **_listing_fields(sent),
    }


def _received_json(entry: inbound_queries.ReceivedDocument) -> dict[str, Any]:
    validation = json.loads(entry.validation) if entry.validation else None
    return {
        "id": f"r{entry.entry_id}",
        "direction": "RECEIVED",
        "status": DocumentStatus.ANSWERED if entry.response_code else DocumentStatus.RECEIVED,
        "kind": entry.kind,
        "answers": f"s{entry.answers_outbound_id}" if entry.answers_outbound_id else None,
        "response": {"code": entry.response_code, "document": f"s{entry.response_outbound_id}"}
        if entry.response_code
        else None,
        "mls_sent": entry.mls_code,
        "validation": {"valid": validation["valid"], "errors": validation["errors"], "warnings": validation["warnings"]}
        if validation
        else None,
        "sender": f"{entry.sender_scheme}::{entry.sender_value}",
        "receiver": f"{entry.receiver_scheme}::{entry.receiver_value}",
        "document_type": entry.document_type,
        "process": entry.process,
        "country_c1": entry.country_c1,
        "as4_message_id": entry.as4_message_id,
        "sending_access_point": entry.sending_ap,
        "size": entry.payload_bytes,
        "received_at": _stamp(entry.received_at),
        "acknowledged_at": _stamp(entry.read_at),
        **_listing_fields(entry),
    }


def _split_id(raw: str) -> tuple[str, int]:
    if len(raw) > 1 and raw[0] in "sr" and raw[1:].isdigit():
        return raw[0], int(raw[1:])
    raise ApiError(404, "not_found", "no such document")


async def _received_row(request: web.Request, company_id: uuid.UUID, entry_id: int) -> inbound_queries.ReceivedDocument:
    entry = await inbound_queries.received_document(_pool(request), company_id, entry_id, _kinds(request))
    if entry is None:
        raise ApiError(404, "not_found", "no such document")
    return entry


async def get_document(request: web.Request) -> web.Response:
    principal = require(request, "company")
    assert principal.company_id is not None
    kind, number = _split_id(request.match_info["doc_id"])
    if kind == "s":
        return ok(await _sent(_pool(request), principal.company_id, number))
    return ok(_received_json(await _received_row(request, principal.company_id, number)))


async def get_audit(request: web.Request) -> web.Response:
    principal = require(request, "company")
    assert principal.company_id is not None
    kind, number = _split_id(request.match_info["doc_id"])
    if kind != "s":
        entry = await _received_row(request, principal.company_id, number)
        return ok(
            [{"at": _stamp(entry.received_at), "state": DocumentStatus.RECEIVED, "reason": "stored and receipt sent"}]
        )
    await _sent(_pool(request), principal.company_id, number)
    status = await outbound_queries.outbound_status(_pool(request), number)
    assert status is not None
    return ok([{"at": at.isoformat(), "state": state, "reason": reason} for at, state, reason in status.audit])


async def _locate(request: web.Request) -> tuple[str, int, documents_queries.StoredRef]:
    """The caller's document: its direction (``in``/``out``), message id and where it is stored."""
    principal = require(request, "documents:receive")
    assert principal.company_id is not None
    kind, number = _split_id(request.match_info["doc_id"])
    if kind == "s":
        ref = await outbound_queries.sent_ref(_pool(request), principal.company_id, number)
        if ref is None:
            raise ApiError(404, "not_found", "no such document")
        return "out", number, ref
    entry = await _received_row(request, principal.company_id, number)
    return "in", entry.id, documents_queries.StoredRef(entry.document_sha256, entry.archive_key)


async def _stored_bytes(request: web.Request, ref: documents_queries.StoredRef) -> bytes:
    content = await documents_queries.document_content(_pool(request), ref.sha256)
    if content is not None:
        return content
    archive = request.app[RUNTIME].archive
    if ref.archive_key is None or archive is None:
        raise ApiError(500, "internal_error", "the document was archived and the archive is not configured")
    try:
        return await read_archived(archive, ref.archive_key)
    except (ArchiveError, ValueError) as exc:
        raise ApiError(503, "archive_unavailable", f"the archive cannot be read now: {exc}") from None


async def _content(request: web.Request) -> bytes:
    _, _, ref = await _locate(request)
    return await _stored_bytes(request, ref)


async def _view(request: web.Request) -> dict[str, Any]:
    """The document's content view: the one kept when it was stored, or read now (and kept) for
    a document stored before views were kept or under an older view version."""
    direction, message_id, ref = await _locate(request)
    pool = _pool(request)
    stored = await documents_queries.stored_content(pool, direction, message_id)
    if stored is not None and stored.version == VIEW_VERSION:
        view: dict[str, Any] = json.loads(stored.view)
        return view
    try:
        _, business = read_sbd(await _stored_bytes(request, ref))
    except SbdhError:
        raise ApiError(500, "internal_error", "the stored envelope cannot be read") from None
    content = extract(BusinessDocument(business))
    await documents_queries.put_content(pool, direction, message_id, content_row(content))
    return content_json(content)


async def get_content(request: web.Request) -> web.Response:
    """The document as typed JSON: parties, lines, VAT, totals, payment, references, attachments."""
    return ok(await _view(request))


_RENDER_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"


async def render_document(request: web.Request) -> web.Response:
    """The document as a printable HTML page (self-contained: nothing is loaded, nothing runs)."""
    html = render_html(await _view(request))
    return web.Response(
        text=html,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": _RENDER_POLICY, "X-Content-Type-Options": "nosniff"},
    )


async def download_envelope(request: web.Request) -> web.Response:
    return web.Response(body=await _content(request), content_type="application/xml", charset="utf-8")


async def download_document(request: web.Request) -> web.Response:
    from lxml import etree

    try:
        _, document = read_sbd(await _content(request))
    except SbdhError:
        raise ApiError(500, "internal_error", "the stored envelope cannot be read") from None
    return web.Response(
        body=etree.tostring(document, xml_declaration=True, encoding="UTF-8"),
        content_type="application/xml",
        charset="utf-8",
    )


async def list_attachments(request: web.Request) -> web.Response:
    _, document = read_sbd(await _content(request))
    cbc = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
    items = []
    for index, obj in enumerate(document.iter(f"{{{cbc}}}EmbeddedDocumentBinaryObject")):
        items.append(
            {
                "index": index,
                "filename": obj.get("filename"),
                "mime_code": obj.get("mimeCode"),
                "size": len(base64.b64decode("".join((obj.text or "").split()) or b"", validate=False)),
            }
        )
    return ok(items)


async def download_attachment(request: web.Request) -> web.Response:
    _, document = read_sbd(await _content(request))
    cbc = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
    objects = list(document.iter(f"{{{cbc}}}EmbeddedDocumentBinaryObject"))
    index = request.match_info["index"]
    if not index.isdigit() or int(index) >= len(objects):
        raise ApiError(404, "not_found", "no such attachment")
    obj = objects[int(index)]
    try:
        data = base64.b64decode("".join((obj.text or "").split()), validate=True)
    except ValueError:
        raise ApiError(422, "validation_error", "the attachment is not valid base64") from None
    filename = (obj.get("filename") or f"attachment-{index}").replace('"', "")
    return web.Response(
        body=data,
        content_type=obj.get("mimeCode") or "application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def acknowledge(request: web.Request) -> web.Response:
    principal = require(request, "documents:receive")
    assert principal.company_id is not None
    kind, number = _split_id(request.match_info["doc_id"])
    if kind != "r":
        raise ApiError(404, "not_found", "only received documents are acknowledged")
    await _received_row(request, principal.company_id, number)
    await inbound_queries.acknowledge_received(_pool(request), principal.company_id, number)
    services = request.app.get(SERVICES)
    if services is not None:  # a positive MLS held for this acknowledgement goes out now
        await services.processor.acknowledged(principal.company_id, number)
    return ok(_received_json(await _received_row(request, principal.company_id, number)))


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, "validation_error", f"{name} is an integer from {lo} to {hi}", {"field": name})
    return int(raw)


def _decimal_param(request: web.Request, name: str) -> Decimal | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or len(raw) > 40:
        raise ApiError(400, "validation_error", f"{name} is a decimal number", {"field": name})
    return value


def _date_param(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise ApiError(400, "validation_error", f"{name} is a date (YYYY-MM-DD)", {"field": name})


def _content_filter(request: web.Request) -> documents_queries.ContentFilter | None:
    """The filters on the content view's listing fields; None when none is given."""
    names = ("number", "amount_min", "amount_max", "issued_from", "issued_to", "partner")
    if not any(request.query.get(name) for name in names):
        return None
    return documents_queries.ContentFilter(
        number=request.query.get("number") or None,
        amount_min=_decimal_param(request, "amount_min"),
        amount_max=_decimal_param(request, "amount_max"),
        issued_from=_date_param(request, "issued_from"),
        issued_to=_date_param(request, "issued_to"),
        partner=request.query.get("partner") or None,
    )


async def list_documents(request: web.Request) -> web.Response:
    """Newest first with a cursor (the last id of the previous page)."""
    principal = require(request, "company")
    company_id = principal.company_id
    if company_id is None:
        raise ApiError(403, "insufficient_scope", "mailboxes belong to companies")
    direction = request.query.get("direction", "RECEIVED").upper()
    limit = _int(request, "limit", 100, 1, MAX_PAGE)
    cursor = request.query.get("cursor")
    start = _parse_time(request.query.get("received_at_start"), "received_at_start")
    end = _parse_time(request.query.get("received_at_end"), "received_at_end")
    kinds = _kinds(request)
    document_type = request.query.get("document_type")
    sender = request.query.get("sender")
    fields = [f for f in (request.query.get("fields") or "").split(",") if f]
    content = _content_filter(request)
    pool = _pool(request)
    items: list[dict[str, Any]]
    if direction == "RECEIVED":
        after = _split_id(cursor)[1] if cursor else None
        acknowledged = request.query.get("acknowledged")
        received = await inbound_queries.list_received(
            pool, company_id, before=after, start=start, end=end, document_types=kinds, document_type=document_type,
            sender=sender, acknowledged=None if acknowledged is None else acknowledged.lower() == "true", limit=limit,
            content=content,
        )  # fmt: skip
        items = [_received_json(r) for r in received]
    elif direction == "SENT":
        after = _split_id(cursor)[1] if cursor else None
        sent = await outbound_queries.list_sent(
            pool, company_id, before=after, start=start, end=end, document_types=kinds, document_type=document_type,
            state=request.query.get("status"), limit=limit, content=content,
        )  # fmt: skip
        items = [_sent_json(r) for r in sent]
    else:
        raise ApiError(400, "validation_error", "direction is RECEIVED or SENT", {"field": "direction"})
    if fields:
        items = [{k: v for k, v in item.items() if k in fields or k == "id"} for item in items]
    next_cursor = items[-1]["id"] if len(items) == limit else None
    return ok({"items": items, "next_cursor": next_cursor})


async def usage(request: web.Request) -> web.Response:
    """Documents sent and received in the current calendar month (UTC), per company."""
    principal = require(request)
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if principal.kind == "company":
        companies = [principal.company_id]
    else:
        operator = principal.operator_id
        companies = list(await directory_queries.operator_companies(_pool(request), operator)) if operator else []
    rows = await outbound_queries.company_usage(_pool(request), companies, start)
    return ok(
        {
            "period": {"start": start.isoformat(), "end": now.isoformat()},
            "companies": [
                {"company_id": str(r.id), "name": r.name, "sent": r.sent, "delivered": r.delivered,
                 "received": r.received}
                for r in rows
            ],
        }
    )  # fmt: skip


async def validate(request: web.Request) -> web.Response:
    """Validate without sending: the same layers as at submission."""
    require(request, "documents:send")
    document, _ = await _upload(request)
    assert isinstance(document, bytes)
    validator = request.app[RUNTIME].validator or Validator(1)
    try:
        result = await validator.validate(document)
    finally:
        if validator is not request.app[RUNTIME].validator:
            validator.close()
    return ok(result.as_json())


def add_document_routes(app: web.Application) -> None:
    app.router.add_get("/v1/usage", usage)
    app.router.add_post("/v1/validate", validate)
    for base in ("/v1/documents", "/v1/invoices"):
        app.router.add_post(base, send_document)
        app.router.add_get(base, list_documents)
        app.router.add_get(base + "/{doc_id}", get_document)
        app.router.add_get(base + "/{doc_id}/audit", get_audit)
        app.router.add_get(base + "/{doc_id}/document", download_document)
        app.router.add_get(base + "/{doc_id}/envelope", download_envelope)
        app.router.add_get(base + "/{doc_id}/content", get_content)
        app.router.add_get(base + "/{doc_id}/render", render_document)
        app.router.add_get(base + "/{doc_id}/attachments", list_attachments)
        app.router.add_get(base + "/{doc_id}/attachments/{index}", download_attachment)
        app.router.add_post(base + "/{doc_id}/acknowledge", acknowledge)
