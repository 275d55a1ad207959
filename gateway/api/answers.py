"""``POST /v1/documents/{id}/response``: answer a received document from the mailbox.

An invoice or credit note gets an Invoice Response, an order an Order Response, any business
document a Message Level Response. The gateway builds the UBL answer from the received document
(its id, the two parties and their endpoints), checks it, and sends it back to the original
sender through the normal outbound path; the received document then shows the answer.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from lxml import etree

from gateway.api.accounts import RUNTIME, _json
from gateway.api.auth import require
from gateway.api.envelope import ApiError
from gateway.api.idempotency import Created, create_once, json_digest
from gateway.documents.business import BusinessDocument
from gateway.documents.envelope import SbdhError, read_sbd
from gateway.duties.responses import (
    CAC,
    CBC,
    Issue,
    LineStatus,
    ResponseError,
    build_invoice_response,
    build_mlr,
    build_order_response,
    check_response,
    read_document,
)
from gateway.inbound import queries as inbound_queries
from gateway.outbound import queries as outbound_queries
from gateway.outbound.submission import SubmissionError, SubmitRequest, submit

__all__ = ["add_response_routes"]

_TYPES = ("invoice_response", "order_response", "mlr")


def _list(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ApiError(400, "validation_error", f"{name} is a list of objects", {"field": name})
    return value


def _text(item: dict[str, Any], name: str, field: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "validation_error", f"{field}: {name} is required", {"field": field})
    return value.strip()


def _build(
    kind: str,
    body: dict[str, Any],
    *,
    me: str,
    them: str,
    read: Any,
    instance: str,
    original_root: str,
    currency: str | None = None,
    order_items: dict[str, str] | None = None,
) -> bytes:
    code = body.get("code")
    if not isinstance(code, str):
        raise ApiError(400, "validation_error", "code is required", {"field": "code"})
    note = body.get("note") if isinstance(body.get("note"), str) else None
    if kind == "invoice_response":
        if original_root not in ("Invoice", "CreditNote"):
            raise ApiError(409, "wrong_document", "an invoice response answers an invoice or a credit note")
        reasons = [(_text(r, "code", "reasons"), str(r.get("text") or "")) for r in _list(body, "reasons")]
        actions = [(_text(a, "code", "actions"), str(a.get("text") or "")) for a in _list(body, "actions")]
        return build_invoice_response(
            sender=me, receiver=them, invoice_id=read.document_id, code=code, reasons=reasons, actions=actions,
            invoice_type_code="381" if original_root == "CreditNote" else "380", note=note,
            sender_name=read.receiver_name, receiver_name=read.sender_name,
        )  # fmt: skip
    if kind == "order_response":
        if original_root != "Order":
            raise ApiError(409, "wrong_document", "an order response answers an order")
        items = order_items or {}
        lines = [
            LineStatus(
                line_id=_text(line, "line_id", "lines"),
                status=_text(line, "status", "lines"),
                quantity=str(line["quantity"]) if line.get("quantity") is not None else None,
                unit_code=line.get("unit_code"),
                note=line.get("note"),
                item_name=items.get(_text(line, "line_id", "lines")),
            )
            for line in _list(body, "lines")
        ]
        return build_order_response(
            seller=me, buyer=them, order_id=read.document_id, code=code, lines=lines, note=note,
            seller_name=read.receiver_name, buyer_name=read.sender_name, currency=currency,
        )  # fmt: skip
    issues = [
        Issue(str(i.get("location") or "NA"), _text(i, "code", "issues"), _text(i, "text", "issues"))
        for i in _list(body, "issues")
    ]
    return build_mlr(
        sender=me, receiver=them, referenced_instance=instance, code=code, issues=issues,
        description=note, sender_name=read.receiver_name, receiver_name=read.sender_name,
    )  # fmt: skip


def _item_names(order: etree._Element) -> dict[str, str]:
    """An order's line ids and the names of their items (an order response repeats them)."""
    names = {}
    for item in order.iterfind(f"{{{CAC}}}OrderLine/{{{CAC}}}LineItem"):
        line_id, name = item.findtext(f"{{{CBC}}}ID"), item.findtext(f"{{{CAC}}}Item/{{{CBC}}}Name")
        if line_id and name:
            names[line_id.strip()] = " ".join(name.split())
    return names


async def respond(request: web.Request) -> web.Response:
    principal = require(request, "documents:send")
    if principal.company_id is None:
        raise ApiError(403, "insufficient_scope", "documents are answered by companies")
    raw = request.match_info["doc_id"]
    if not (len(raw) > 1 and raw[0] == "r" and raw[1:].isascii() and raw[1:].isdigit() and int(raw[1:]) < 2**63):
        raise ApiError(404, "not_found", "no such received document")
    runtime = request.app[RUNTIME]
    pool = runtime.pool
    row = await inbound_queries.received_for_response(pool, int(raw[1:]), principal.company_id)
    if row is None:
        raise ApiError(404, "not_found", "no such received document")
    body = await _json(request)
    kind = body.get("type")
    if kind not in _TYPES:
        raise ApiError(400, "validation_error", f"type is one of {', '.join(_TYPES)}", {"field": "type"})
    if row.kind in ("mls", "mlr", "report"):
        raise ApiError(409, "wrong_document", f"a received {row.kind.upper()} is not answered")
    # answered already: refused under the response's lock below (a retry with its key gets the answer)
    try:
        envelope, business = read_sbd(row.content, require_country=False)
    except SbdhError:
        raise ApiError(500, "internal_error", "the stored envelope cannot be read") from None
    read = read_document(business)
    me, them = envelope.receiver, envelope.sender
    try:
        document = _build(
            kind, body, me=me, them=them, read=read, instance=envelope.instance_identifier, original_root=read.root,
            currency=business.findtext(f"{{{CBC}}}DocumentCurrencyCode"), order_items=_item_names(business),
        )  # fmt: skip
    except ResponseError as exc:
        raise ApiError(400, "validation_error", exc.message, {"field": exc.field}) from None
    response = BusinessDocument.parse(document)
    broken = check_response(response.root)
    if broken:
        rules = ", ".join(rule for rule, _ in broken)
        raise ApiError(400, "validation_error", f"the response breaks: {rules}", {"rules": broken})
    answer = SubmitRequest(
        response, runtime.settings.retry_window, sender=me, receiver=them, country_c1=row.country,
        company_id=principal.company_id, answers_inbound_id=row.id,
    )  # fmt: skip

    async def send(conn: asyncpg.Connection) -> Created:
        taken = await inbound_queries.lock_response(conn, row.id)
        if taken is not None:
            raise ApiError(409, "already_answered", "this document was answered already")
        try:
            submitted = await submit(conn, answer)
        except SubmissionError as exc:
            raise ApiError(400, "validation_error", exc.message, {"field": exc.field}) from None
        job, derived = submitted.job_id, submitted.derived
        await inbound_queries.set_response(conn, row.id, job, body["code"])
        status = await outbound_queries.outbound_status(conn, job)
        assert status is not None
        data = {
            "id": f"s{job}",
            "type": kind,
            "code": body["code"],
            "answers": raw,
            "document_type": str(derived.document_type),
            "status": status.state,
            "document": document.decode("utf-8"),
        }
        return Created(data, status=202)

    return await create_once(pool, request, principal, json_digest(request, body), send)


def add_response_routes(app: web.Application) -> None:
    app.router.add_post("/v1/documents/{doc_id}/response", respond)
