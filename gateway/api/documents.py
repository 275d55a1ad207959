"""Sending, status, mailbox polling, download and acknowledgement: ``/v1/documents`` and
``/v1/invoices`` (the same resources, limited to invoices and credit notes).

Ids are ``s<n>`` for documents the company sent and ``r<n>`` for documents it received.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from opentelemetry import trace

from gateway.api.accounts import RUNTIME, _parse_time
from gateway.api.auth import Principal, require
from gateway.api.envelope import ApiError, ok
from gateway.documents.envelope import SbdhError, read_sbd
from gateway.duties.archive import read_archived
from gateway.duties.archive_store import ArchiveError
from gateway.duties.validation import Validator
from gateway.outbound import queries as outbound_queries
from gateway.outbound.delivery import SubmissionError, derive_submission, submit_document

__all__ = ["add_document_routes"]

_INVOICE_ROOTS = (
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##%",
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2::CreditNote##%",
)
_ALL = ("%",)
MAX_PAGE = 500


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.app[RUNTIME].pool


def _kinds(request: web.Request) -> tuple[str, ...]:
    return _INVOICE_ROOTS if request.path.startswith("/v1/invoices") else _ALL


async def _verified_company(request: web.Request, principal: Principal) -> uuid.UUID:
    if principal.company_id is None:
        raise ApiError(403, "insufficient_scope", "documents are sent and received by companies")
    verified = await _pool(request).fetchval("SELECT verified FROM companies WHERE id = $1", principal.company_id)
    if not verified:
        raise ApiError(403, "company_not_verified", "an operator must verify the company first")
    return principal.company_id


async def _upload(request: web.Request) -> tuple[bytes, dict[str, str]]:
    """The document from a multipart upload (field ``file``) or a raw XML body, plus form fields."""
    fields: dict[str, str] = {}
    limit = request.app[RUNTIME].settings.max_payload_bytes
    if request.content_type.startswith("multipart/"):
        document = None
        try:
            reader = await request.multipart()
            async for part in reader:
                if part.name == "file":  # type: ignore[union-attr]
                    document = bytes(await part.read(decode=True))  # type: ignore[union-attr]
                elif part.name:  # type: ignore[union-attr]
                    fields[part.name] = (await part.text()).strip()  # type: ignore[union-attr]
        except (ValueError, AssertionError, HttpProcessingError) as exc:
            raise ApiError(400, "validation_error", f"malformed multipart body: {exc}") from None
        if document is None:
            raise ApiError(400, "validation_error", "upload the document in a field named file", {"field": "file"})
    else:
        document = await request.read()
        fields = {k: v for k, v in request.query.items()}
    if not document:
        raise ApiError(400, "validation_error", "the document is empty", {"field": "file"})
    if len(document) > limit:
        raise ApiError(413, "payload_too_large", f"the document is larger than {limit} bytes")
    return document, fields


async def send_document(request: web.Request) -> web.Response:
    principal = require(request, "documents:send")
    company_id = await _verified_company(request, principal)
    pool = _pool(request)
    key = request.headers.get("Idempotency-Key")
    if key:
        earlier = await pool.fetchrow(
            "SELECT status, response FROM idempotency_keys WHERE company_id = $1 AND key = $2",
            company_id,
            key,
        )
        if earlier is not None:
            return web.json_response(json.loads(earlier["response"]), status=earlier["status"])
    document, fields = await _upload(request)
    try:
        derived = derive_submission(
            document,
            sender=fields.get("sender"),
            receiver=fields.get("receiver") or fields.get("recipient"),
            document_type=fields.get("document_type"),
            process=fields.get("process"),
            country_c1=fields.get("country"),
            mls_type=fields.get("mls_type"),
        )
    except SubmissionError as exc:
        raise ApiError(400, "validation_error", exc.message, {"field": exc.field}) from None
    if request.path.startswith("/v1/invoices") and not any(
        str(derived.document_type).startswith(root[:-1]) for root in _INVOICE_ROOTS
    ):
        raise ApiError(400, "validation_error", "only invoices and credit notes here; use /v1/documents")
    validator = request.app[RUNTIME].validator
    recorded: str | None = None
    if validator is not None:
        result = await validator.validate(derived.sbd)
        policy = await pool.fetchval("SELECT outbound_validation FROM companies WHERE id = $1", company_id)
        if not result.valid and policy != "warn":
            errors = result.as_json()["errors"]
            rules = ", ".join(e["rule_id"] for e in errors[:10])
            raise ApiError(400, "validation_error", f"the document breaks: {rules}", {"validation": result.as_json()})
        if result.findings:
            report = result.as_json()
            report["warnings"] = report["errors"] + report["warnings"]  # sent anyway: all are warnings now
            recorded = json.dumps(report)
    owns = await pool.fetchval(
        "SELECT true FROM participants WHERE company_id = $1 AND scheme = $2 AND value = $3",
        company_id,
        derived.sender.scheme,
        derived.sender.key,
    )
    if not owns:
        raise ApiError(
            400, "validation_error", f"the sender {derived.sender} is not a participant of this company",
            {"field": "sender"},
        )  # fmt: skip
    settings = request.app[RUNTIME].settings
    job_id = await submit_document(
        pool, derived, retry_window=settings.retry_window, company_id=company_id, validation=recorded
    )
    data = await _sent(pool, company_id, job_id)
    trace.get_current_span().set_attribute("peppol.document_id", data["id"])
    body = {"success": True, "data": data, "meta": {"timestamp": datetime.now(UTC).isoformat()}}
    if key:
        try:
            await pool.execute(
                "INSERT INTO idempotency_keys (company_id, key, status, response) VALUES ($1, $2, 202, $3)",
                company_id,
                key,
                json.dumps(body),
            )
        except asyncpg.UniqueViolationError:  # a concurrent retry won: answer as it did
            earlier = await pool.fetchrow(
                "SELECT status, response FROM idempotency_keys WHERE company_id = $1 AND key = $2",
                company_id,
                key,
            )
            return web.json_response(json.loads(earlier["response"]), status=earlier["status"])
    return ok(data, status=202)


async def _sent(pool: asyncpg.Pool, company_id: uuid.UUID, job_id: int) -> dict[str, Any]:
    row = await pool.fetchrow(_SENT_SELECT + " WHERE o.id = $1 AND o.company_id = $2", job_id, company_id)
    if row is None:
        raise ApiError(404, "not_found", "no such document")
    return _sent_json(row)


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


_SENT_SELECT = """
    SELECT o.*, (SELECT e.id FROM mailbox_entries e
                 WHERE e.message_id = o.response_inbound_id AND e.company_id = o.company_id) AS response_entry_id,
                (SELECT e.id FROM mailbox_entries e
                 WHERE e.message_id = o.answers_inbound_id AND e.company_id = o.company_id) AS answers_entry_id
    FROM outbound_messages o"""


def _sent_status(row: Any) -> str:
    """queued/sending/failed while in transport; delivered with the receipt; accepted or rejected
    once the receiving access point's Message Level Status says so."""
    if row["state"] == "delivered" and row["mls_code"] is not None:
        return "rejected" if row["mls_code"] == "RE" else "accepted"
    return {"sending": "sending", "queued": "queued", "retrying": "sending"}.get(row["state"], row["state"])


def _sent_json(row: Any) -> dict[str, Any]:
    return {
        "id": f"s{row['id']}",
        "direction": "SENT",
        "status": _sent_status(row),
        "kind": row["kind"],
        "mls": {"code": row["mls_code"], "reason": row["mls_reason"], "at": _stamp(row["mls_at"])}
        if row["mls_code"]
        else None,
        "response": {"code": row["response_code"], "document": f"r{row['response_entry_id']}"}
        if row["response_code"]
        else None,
        "answers": f"r{row['answers_entry_id']}" if row["answers_entry_id"] else None,
        "warnings": (json.loads(row["validation"]) or {}).get("warnings") if row["validation"] else None,
        "sender": row["sender"],
        "receiver": row["receiver"],
        "document_type": row["document_type"],
        "process": row["process"],
        "as4_message_id": row["as4_message_id"],
        "attempts": row["attempts"],
        "error": {"code": row["error_code"], "reason": row["last_error"]} if row["state"] == "failed" else None,
        "created_at": _stamp(row["created_at"]),
        "updated_at": _stamp(row["updated_at"]),
        "delivered_at": _stamp(row["delivered_at"]),
    }


def _received_json(row: Any) -> dict[str, Any]:
    validation = json.loads(row["validation"]) if row["validation"] else None
    return {
        "id": f"r{row['entry_id']}",
        "direction": "RECEIVED",
        "status": "answered" if row["response_code"] else "received",
        "kind": row["kind"],
        "answers": f"s{row['answers_outbound_id']}" if row["answers_outbound_id"] else None,
        "response": {"code": row["response_code"], "document": f"s{row['response_outbound_id']}"}
        if row["response_code"]
        else None,
        "mls_sent": row["mls_code"],
        "validation": {"valid": validation["valid"], "errors": validation["errors"], "warnings": validation["warnings"]}
        if validation
        else None,
        "sender": f"{row['sender_scheme']}::{row['sender_value']}",
        "receiver": f"{row['receiver_scheme']}::{row['receiver_value']}",
        "document_type": row["document_type"],
        "process": row["process"],
        "country_c1": row["country_c1"],
        "as4_message_id": row["as4_message_id"],
        "sending_access_point": row["sending_ap"],
        "size": row["payload_bytes"],
        "received_at": _stamp(row["received_at"]),
        "acknowledged_at": _stamp(row["read_at"]),
    }


_RECEIVED_SELECT = """
    SELECT e.id AS entry_id, e.read_at, m.*
    FROM mailbox_entries e JOIN inbound_messages m ON m.id = e.message_id"""


def _split_id(raw: str) -> tuple[str, int]:
    if len(raw) > 1 and raw[0] in "sr" and raw[1:].isdigit():
        return raw[0], int(raw[1:])
    raise ApiError(404, "not_found", "no such document")


async def _received_row(request: web.Request, company_id: uuid.UUID, entry_id: int) -> Any:
    row = await _pool(request).fetchrow(
        _RECEIVED_SELECT + " WHERE e.id = $1 AND e.company_id = $2 AND m.document_type LIKE ANY($3::text[])",
        entry_id,
        company_id,
        list(_kinds(request)),
    )
    if row is None:
        raise ApiError(404, "not_found", "no such document")
    return row


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
        row = await _received_row(request, principal.company_id, number)
        return ok([{"at": _stamp(row["received_at"]), "state": "received", "reason": "stored and receipt sent"}])
    await _sent(_pool(request), principal.company_id, number)
    status = await outbound_queries.outbound_status(_pool(request), number)
    assert status is not None
    return ok([{"at": at.isoformat(), "state": state, "reason": reason} for at, state, reason in status.audit])


async def _content(request: web.Request) -> bytes:
    principal = require(request, "documents:receive")
    assert principal.company_id is not None
    kind, number = _split_id(request.match_info["doc_id"])
    pool = _pool(request)
    if kind == "s":
        row = await pool.fetchrow(
            "SELECT document_sha256, archive_key FROM outbound_messages WHERE id = $1 AND company_id = $2",
            number,
            principal.company_id,
        )
        if row is None:
            raise ApiError(404, "not_found", "no such document")
    else:
        row = await _received_row(request, principal.company_id, number)
    content = await pool.fetchval("SELECT content FROM documents WHERE sha256 = $1", row["document_sha256"])
    if content is not None:
        return bytes(content)
    archive = request.app[RUNTIME].archive
    if row["archive_key"] is None or archive is None:
        raise ApiError(500, "internal_error", "the document was archived and the archive is not configured")
    try:
        return await read_archived(archive, row["archive_key"])
    except (ArchiveError, ValueError) as exc:
        raise ApiError(503, "archive_unavailable", f"the archive cannot be read now: {exc}") from None


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
    await _pool(request).execute(
        "UPDATE mailbox_entries SET read_at = coalesce(read_at, now()) WHERE id = $1 AND company_id = $2",
        number,
        principal.company_id,
    )
    return ok(_received_json(await _received_row(request, principal.company_id, number)))


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, "validation_error", f"{name} is an integer from {lo} to {hi}", {"field": name})
    return int(raw)


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
    kinds = list(_kinds(request))
    document_type = request.query.get("document_type")
    sender = request.query.get("sender")
    fields = [f for f in (request.query.get("fields") or "").split(",") if f]
    pool = _pool(request)
    if direction == "RECEIVED":
        after = _split_id(cursor)[1] if cursor else None
        acknowledged = request.query.get("acknowledged")
        rows = await pool.fetch(
            _RECEIVED_SELECT
            + """ WHERE e.company_id = $1 AND ($2::bigint IS NULL OR e.id < $2)
                  AND ($3::timestamptz IS NULL OR m.received_at >= $3)
                  AND ($4::timestamptz IS NULL OR m.received_at < $4)
                  AND m.document_type LIKE ANY($5::text[])
                  AND ($6::text IS NULL OR m.document_type = $6)
                  AND ($7::text IS NULL OR m.sender_scheme || '::' || m.sender_value = lower($7)
                       OR m.sender_value = lower($7))
                  AND ($8::boolean IS NULL OR (e.read_at IS NOT NULL) = $8)
                ORDER BY e.id DESC LIMIT $9""",
            company_id, after, start, end, kinds, document_type, sender,
            None if acknowledged is None else acknowledged.lower() == "true", limit,
        )  # fmt: skip
        items = [_received_json(r) for r in rows]
    elif direction == "SENT":
        after = _split_id(cursor)[1] if cursor else None
        status = request.query.get("status")
        rows = await pool.fetch(
            _SENT_SELECT
            + """ WHERE o.company_id = $1 AND ($2::bigint IS NULL OR o.id < $2)
                 AND ($3::timestamptz IS NULL OR o.created_at >= $3) AND ($4::timestamptz IS NULL OR o.created_at < $4)
                 AND o.document_type LIKE ANY($5::text[]) AND ($6::text IS NULL OR o.document_type = $6)
                 AND ($7::text IS NULL OR o.state = $7)
               ORDER BY o.id DESC LIMIT $8""",
            company_id, after, start, end, kinds, document_type, status, limit,
        )  # fmt: skip
        items = [_sent_json(r) for r in rows]
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
        companies = [
            r["id"]
            for r in await _pool(request).fetch(
                "SELECT id FROM companies WHERE operator_id = $1", principal.operator_id
            )
        ]
    rows = await _pool(request).fetch(
        """SELECT c.id, c.name,
                  (SELECT count(*) FROM outbound_messages o WHERE o.company_id = c.id AND o.created_at >= $2) AS sent,
                  (SELECT count(*) FROM outbound_messages o WHERE o.company_id = c.id AND o.created_at >= $2
                       AND o.state = 'delivered') AS delivered,
                  (SELECT count(*) FROM mailbox_entries e WHERE e.company_id = c.id AND e.created_at >= $2) AS received
           FROM companies c WHERE c.id = ANY($1::uuid[]) ORDER BY c.name""",
        companies,
        start,
    )
    return ok(
        {
            "period": {"start": start.isoformat(), "end": now.isoformat()},
            "companies": [
                {"company_id": str(r["id"]), "name": r["name"], "sent": r["sent"], "delivered": r["delivered"],
                 "received": r["received"]}
                for r in rows
            ],
        }
    )  # fmt: skip


async def validate(request: web.Request) -> web.Response:
    """Validate without sending: the same layers as at submission."""
    require(request, "documents:send")
    document, _ = await _upload(request)
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
        app.router.add_get(base + "/{doc_id}/attachments", list_attachments)
        app.router.add_get(base + "/{doc_id}/attachments/{index}", download_attachment)
        app.router.add_post(base + "/{doc_id}/acknowledge", acknowledge)
