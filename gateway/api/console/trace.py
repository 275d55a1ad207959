"""The message trace: find sent and received documents, follow one step by step (queued,
attempts and their reasons, receipt, Message Level Status, business response), download its
evidence, and send a failed one again.

Ids are the API's: ``s<n>`` for a document a company sent, ``r<n>`` for one it received. Every
query is limited to the signed-in user's companies, so another tenant's document is not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from lxml import etree

from gateway.api.accounts import RUNTIME
from gateway.api.console.extensions import DOCUMENT_PANELS, Panel
from gateway.api.console.pages import ConsoleError, render, when
from gateway.api.console.session import USER, ConsoleUser, pool_of, see_other
from gateway.api.documents import DocumentStatus, _sent_status
from gateway.directory import queries as directory_queries
from gateway.documents import queries as documents_queries
from gateway.documents.envelope import SbdhError, read_sbd
from gateway.duties.archive import read_archived
from gateway.duties.archive_store import ArchiveError
from gateway.inbound import queries as inbound_queries
from gateway.outbound import queries as outbound_queries
from gateway.outbound.states import FINAL, OutboundState
from gateway.outbound.submission import CHECKED_KINDS, DuplicateDocument, SubmissionError, SubmitRequest, submit

__all__ = ["add_trace_routes"]

PAGE = 50
RECEIVED_STATUSES = (DocumentStatus.RECEIVED, DocumentStatus.ANSWERED)
EVIDENCE = {  # file name offered -> (name in an archived exchange, content type)
    "envelope.xml": ("document.xml", "application/xml"),
    "as4-message.mime": ("as4-message.mime", "application/octet-stream"),
    "receipt.xml": ("receipt.xml", "application/xml"),
}


@dataclass(frozen=True)
class Row:
    """One line of the search result, sent or received alike."""

    id: str
    direction: str
    at: datetime
    number: str | None
    participant: str
    partner: str
    document_type: str
    status: str


@dataclass(frozen=True)
class Step:
    """One step of a document's audit trail."""

    at: datetime | None
    state: str
    reason: str
    link: str | None = None


def _split(raw: str) -> tuple[str, int]:
    if len(raw) > 1 and raw[0] in "sr" and raw[1:].isdigit() and int(raw[1:]) < 2**63:
        return raw[0], int(raw[1:])
    raise ConsoleError(404, "no such document")


def _short_type(document_type: str) -> str:
    """``...::Invoice##urn:...`` reads as Invoice."""
    head = document_type.split("##", 1)[0]
    return head.rsplit("::", 1)[-1] or document_type


def _day(raw: str | None, field: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ConsoleError(400, f"{field} is a date (YYYY-MM-DD)") from None


def _start_of(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), tzinfo=UTC)


async def search(request: web.Request) -> web.Response:
    """Sent and received documents, newest first, by number, participant, partner, status and date."""
    user = request[USER]
    user.need("company")
    query = request.query
    filters = {name: (query.get(name) or "").strip() for name in ("number", "participant", "partner", "status")}
    direction = query.get("direction") or "all"
    first, last = _day(query.get("from"), "from"), _day(query.get("to"), "to")
    start, end = _start_of(first), _start_of(last + timedelta(days=1) if last else None)
    status = filters["status"]
    sent_states = {str(s) for s in OutboundState}
    if status and status not in sent_states and status not in RECEIVED_STATUSES:
        raise ConsoleError(400, f"no status {status}")
    pool, companies = pool_of(request), user.company_ids
    common = {
        "number": filters["number"] or None, "participant": filters["participant"] or None,
        "partner": filters["partner"] or None, "start": start, "end": end, "limit": PAGE,
    }  # fmt: skip
    rows: list[Row] = []
    if direction in ("all", "sent") and status not in RECEIVED_STATUSES:
        state = OutboundState(status) if status else None
        for out in await outbound_queries.search_sent(pool, companies, state=state, **common):  # type: ignore[arg-type]
            s = out.sent
            rows.append(Row(f"s{s.id}", "sent", s.created_at, out.document_id, s.sender, s.receiver,
                            _short_type(s.document_type), _sent_status(s)))  # fmt: skip
    if direction in ("all", "received") and status not in sent_states:
        answered = None if not status else status == DocumentStatus.ANSWERED
        for got in await inbound_queries.search_received(pool, companies, answered=answered, **common):  # type: ignore[arg-type]
            r = got.received
            rows.append(Row(
                f"r{r.entry_id}", "received", r.received_at, got.document_id,
                f"{r.receiver_scheme}::{r.receiver_value}", f"{r.sender_scheme}::{r.sender_value}",
                _short_type(r.document_type), DocumentStatus.ANSWERED if r.response_code else DocumentStatus.RECEIVED,
            ))  # fmt: skip
    rows.sort(key=lambda row: row.at, reverse=True)
    return render(
        request, "documents.html", title="Messages", rows=rows[:PAGE], filters=filters, direction=direction,
        first=query.get("from") or "", last=query.get("to") or "",
        statuses=[*sorted(sent_states), *RECEIVED_STATUSES],
    )  # fmt: skip


async def _sent(request: web.Request, user: ConsoleUser, number: int) -> outbound_queries.TracedSent:
    traced = await outbound_queries.traced_sent(pool_of(request), user.company_ids, number)
    if traced is None:
        raise ConsoleError(404, "no such document")
    return traced


async def _received(request: web.Request, user: ConsoleUser, number: int) -> inbound_queries.TracedReceived:
    traced = await inbound_queries.traced_received(pool_of(request), user.company_ids, number)
    if traced is None:
        raise ConsoleError(404, "no such document")
    return traced


async def _sent_trail(request: web.Request, traced: outbound_queries.TracedSent) -> list[Step]:
    sent = traced.sent
    status = await outbound_queries.outbound_status(pool_of(request), sent.id)
    steps = [Step(at, state, reason) for at, state, reason in (status.audit if status else [])]
    if sent.mls_code:
        reason = sent.mls_reason or "no reason given"
        steps.append(Step(sent.mls_at, "mls", f"Message Level Status {sent.mls_code}: {reason}"))
    if sent.response_code:
        link = f"/console/documents/r{sent.response_entry_id}" if sent.response_entry_id else None
        steps.append(Step(None, "response", f"business response {sent.response_code}", link))
    return steps


def _received_trail(traced: inbound_queries.TracedReceived) -> list[Step]:
    r = traced.received
    steps = [
        Step(traced.sent_at, "sent", f"by {r.sending_ap}"),
        Step(r.received_at, "received", "stored, signed receipt sent"),
    ]
    if r.validation:
        steps.append(Step(None, "validated", "checked against the rules (see validation in the envelope)"))
    if r.mls_code:
        steps.append(Step(None, "mls", f"Message Level Status {r.mls_code} sent ({traced.mls_type or 'default'})"))
    if r.read_at:
        steps.append(Step(r.read_at, "acknowledged", "fetched by the company"))
    if r.response_code:
        link = f"/console/documents/s{r.response_outbound_id}" if r.response_outbound_id else None
        steps.append(Step(None, "response", f"business response {r.response_code} sent", link))
    return steps


async def _panels(request: web.Request, user: ConsoleUser, doc_id: str, traced: Any) -> list[Panel]:
    panels = [await panel(request, user, doc_id, traced) for panel in DOCUMENT_PANELS]
    return [p for p in panels if p is not None]


async def document(request: web.Request) -> web.Response:
    user = request[USER]
    user.need("company")
    doc_id = request.match_info["doc_id"]
    kind, number = _split(doc_id)
    if kind == "s":
        traced = await _sent(request, user, number)
        sent = traced.sent
        envelope = [
            ("Number", traced.document_id or "—"), ("Sender", sent.sender), ("Receiver", sent.receiver),
            ("Document type", sent.document_type), ("Process", sent.process), ("Country (C1)", traced.country_c1),
            ("Instance identifier", traced.instance_identifier), ("AS4 MessageId", sent.as4_message_id),
            ("Conversation", traced.conversation_id), ("Receiving endpoint", traced.endpoint_url or "not found yet"),
            ("Attempts", str(sent.attempts)), ("Kind", sent.kind),
        ]  # fmt: skip
        if sent.state not in FINAL:
            envelope.append(("Next attempt", when(traced.next_attempt_at)))
        if sent.state == OutboundState.FAILED:
            envelope.append(("Failure", f"{sent.error_code or 'error'}: {sent.last_error or ''}"))
        archived = bool(traced.archive_key)
        evidence = [("envelope.xml", "The envelope with the business document", True),
                    ("as4-message.mime", "The signed, encrypted AS4 message as sent", traced.has_message or archived),
                    ("receipt.xml", "The signed AS4 receipt received", traced.has_receipt or archived)]  # fmt: skip
        status = _sent_status(sent)
        return render(
            request, "document.html", title=f"Sent document {doc_id}", doc_id=doc_id, direction="sent",
            status=status, live=sent.state not in FINAL, envelope=envelope, steps=await _sent_trail(request, traced),
            evidence=evidence, may_download=user.may("documents:receive"),
            retry=sent.state == OutboundState.FAILED and sent.kind in CHECKED_KINDS and user.may("documents:send"),
            panels=await _panels(request, user, doc_id, traced), notice=request.query.get("notice"),
        )  # fmt: skip
    received = await _received(request, user, number)
    r = received.received
    envelope = [
        ("Number", received.document_id or "—"), ("Sender", f"{r.sender_scheme}::{r.sender_value}"),
        ("Receiver", f"{r.receiver_scheme}::{r.receiver_value}"), ("Document type", r.document_type),
        ("Process", r.process), ("Country (C1)", r.country_c1 or "—"),
        ("Instance identifier", received.instance_identifier or "—"), ("AS4 MessageId", r.as4_message_id),
        ("Conversation", received.conversation_id), ("Sending access point", r.sending_ap),
        ("Sender certificate", received.sender_cert_subject), ("Size", f"{r.payload_bytes} bytes"), ("Kind", r.kind),
    ]  # fmt: skip
    archived = bool(r.archive_key)
    evidence = [("envelope.xml", "The envelope with the business document", True),
                ("as4-message.mime", "The AS4 message as received", received.has_message or archived),
                ("receipt.xml", "The signed AS4 receipt we sent", received.has_receipt or archived)]  # fmt: skip
    return render(
        request, "document.html", title=f"Received document {doc_id}", doc_id=doc_id, direction="received",
        status=DocumentStatus.ANSWERED if r.response_code else DocumentStatus.RECEIVED, live=False, envelope=envelope,
        steps=_received_trail(received), evidence=evidence, may_download=user.may("documents:receive"), retry=False,
        panels=await _panels(request, user, doc_id, received), notice=request.query.get("notice"),
    )  # fmt: skip


async def _stored(request: web.Request, held: bytes | None, archive_key: str | None, name: str) -> bytes:
    """Evidence from the database, or from the archive once the exchange moved there."""
    if held is not None:
        return held
    archive = request.config_dict[RUNTIME].archive
    if archive_key is None or archive is None:
        raise ConsoleError(404, "this evidence is not kept for the document")
    try:
        return await read_archived(archive, archive_key, name)
    except (ArchiveError, ValueError, KeyError) as exc:
        raise ConsoleError(503, f"the archive cannot be read now: {exc}") from None


async def evidence(request: web.Request) -> web.Response:
    """One piece of evidence as a download."""
    user = request[USER]
    user.need("documents:receive")
    doc_id, name = request.match_info["doc_id"], request.match_info["name"]
    if name not in EVIDENCE:
        raise ConsoleError(404, "no such evidence")
    archived_name, content_type = EVIDENCE[name]
    kind, number = _split(doc_id)
    pool = pool_of(request)
    held: bytes | None
    if kind == "s":
        traced = await _sent(request, user, number)
        archive_key = traced.archive_key
        if name == "envelope.xml":
            assert traced.company_id is not None
            ref = await outbound_queries.sent_ref(pool, traced.company_id, number)
            held = await documents_queries.document_content(pool, ref.sha256) if ref else None
        else:
            proof = await outbound_queries.sent_evidence(pool, user.company_ids, number)
            held = None if proof is None else (proof.message if name == "as4-message.mime" else proof.receipt)
    else:
        received = await _received(request, user, number)
        archive_key = received.received.archive_key
        if name == "envelope.xml":
            held = await documents_queries.document_content(pool, received.received.document_sha256)
        else:
            got = await inbound_queries.received_evidence(pool, user.company_ids, number)
            held = None if got is None else (got.message if name == "as4-message.mime" else got.receipt)
    body = await _stored(request, held, archive_key, archived_name)
    return web.Response(
        body=body, content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{doc_id}-{name}"'},
    )  # fmt: skip


async def document_status(request: web.Request) -> web.Response:
    """A document's status and trail length, polled by its page while it is in flight."""
    user = request[USER]
    user.need("company")
    kind, number = _split(request.match_info["doc_id"])
    if kind != "s":
        received = await _received(request, user, number)
        return web.json_response({"status": "answered" if received.received.response_code else "received"})
    traced = await _sent(request, user, number)
    steps = await _sent_trail(request, traced)
    return web.json_response(
        {"status": _sent_status(traced.sent), "final": traced.sent.state in FINAL, "steps": len(steps),
         "attempts": traced.sent.attempts}
    )  # fmt: skip


async def _retryable(request: web.Request, user: ConsoleUser) -> outbound_queries.TracedSent:
    user.need("documents:send")
    kind, number = _split(request.match_info["doc_id"])
    if kind != "s":
        raise ConsoleError(404, "only sent documents are sent again")
    traced = await _sent(request, user, number)
    if traced.sent.state != OutboundState.FAILED:
        raise ConsoleError(409, "only a failed delivery is sent again")
    if traced.sent.kind not in CHECKED_KINDS:
        raise ConsoleError(409, f"a {traced.sent.kind} document is sent again by the gateway itself")
    return traced


async def confirm_retry(request: web.Request) -> web.Response:
    user = request[USER]
    traced = await _retryable(request, user)
    doc_id = request.match_info["doc_id"]
    return render(
        request, "confirm.html", title=f"Send {doc_id} again?", action=f"/console/documents/{doc_id}/retry",
        cancel=f"/console/documents/{doc_id}", button="Send again",
        text=(f"The document {traced.document_id or doc_id} to {traced.sent.receiver} failed: "
              f"{traced.sent.last_error or traced.sent.error_code}. It is sent again as a new document (a new "
              "envelope and AS4 message), found again through the SML and SMP; this one stays failed."),
    )  # fmt: skip


async def retry(request: web.Request) -> web.Response:
    """Send a failed document again: the business document of its envelope, with the same
    parties, type and process, as a new job (the failed one stays failed, with an audit note)."""
    user = request[USER]
    traced = await _retryable(request, user)
    sent, company_id = traced.sent, traced.company_id
    assert company_id is not None
    pool, runtime = pool_of(request), request.config_dict[RUNTIME]
    if not await directory_queries.company_verified(pool, company_id):
        raise ConsoleError(403, "an operator must verify the company first")
    ref = await outbound_queries.sent_ref(pool, company_id, sent.id)
    held = await documents_queries.document_content(pool, ref.sha256) if ref else None
    sbd = await _stored(request, held, traced.archive_key, "document.xml")
    try:
        envelope, business = read_sbd(sbd)
    except SbdhError:
        raise ConsoleError(409, "the stored envelope cannot be read") from None
    window = runtime.settings.duplicate_window or None
    if window is not None and not await directory_queries.duplicate_check(pool, company_id):
        window = None
    wanted = SubmitRequest(
        bytes(etree.tostring(business, xml_declaration=True, encoding="UTF-8")), runtime.settings.retry_window,
        sender=sent.sender, receiver=sent.receiver, document_type=sent.document_type, process=sent.process,
        country_c1=traced.country_c1, mls_type=envelope.mls_type, company_id=company_id, duplicate_window=window,
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        try:
            job = await submit(conn, wanted)
        except DuplicateDocument as exc:
            raise ConsoleError(409, f"the document was sent again already as s{exc.earlier_job_id}") from None
        except SubmissionError as exc:
            raise ConsoleError(409, f"the document cannot be sent again: {exc.message}") from None
        await outbound_queries.add_audit_note(
            conn, sent.id, OutboundState.FAILED, f"sent again as s{job.job_id} by {_who(user)} in the console"
        )
    return see_other(f"/console/documents/s{job.job_id}?notice=sent+again+from+s{sent.id}")


def _who(user: ConsoleUser) -> str:
    return f"{'operator' if user.is_operator else 'company'} {user.name}"


async def home(request: web.Request) -> web.Response:
    return see_other("/console/documents")


def add_trace_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/documents", search)
    app.router.add_get("/documents/{doc_id}", document)
    app.router.add_get("/documents/{doc_id}/evidence/{name}", evidence)
    app.router.add_get("/documents/{doc_id}/retry", confirm_retry)
    app.router.add_post("/documents/{doc_id}/retry", retry)
    app.router.add_get("/api/documents/{doc_id}", document_status)
