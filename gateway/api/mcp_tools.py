"""The MCP tools: what an ERP integrator does with the gateway, one tool per task.

Each tool but the participant lookup is one REST request made through
:class:`gateway.api.subrequest.SubRequests` with the caller's token, so scopes, tenants,
idempotency and validation are the REST API's own. The lookup asks the SML and SMP through the
gateway's discovery client, as ``peppol-gateway lookup`` does. A tool answers with the REST
envelope as structured content (and the same JSON as text); a REST error is a tool error
(``isError``) carrying the envelope's stable ``code``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

import smp
from gateway.api.accounts import RUNTIME
from gateway.api.notifications import EVENTS
from gateway.api.subrequest import SubRequests, SubResponse, segment
from gateway.webhooks.states import DeliveryState

__all__ = ["TOOLS", "Tool", "ToolContext", "ToolResult", "check_arguments"]

DEFAULT_DOCUMENT = smp.profile_services("INVOICE_AND_CREDIT_NOTE")[0]


@dataclass(frozen=True)
class ToolContext:
    """What a tool acts with: the incoming request (its app and caller) and REST on its behalf."""

    request: web.Request
    rest: SubRequests


@dataclass(frozen=True)
class ToolResult:
    content: list[dict[str, Any]]
    structured: dict[str, Any] | None = None
    is_error: bool = False

    def as_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"content": self.content, "isError": self.is_error}
        if self.structured is not None:
            result["structuredContent"] = self.structured
        return result


Runner = Callable[[ToolContext, dict[str, Any]], Awaitable[ToolResult]]


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    run: Runner
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False

    def listing(self) -> dict[str, Any]:
        """The tool as ``tools/list`` shows it."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "annotations": {
                "title": self.title,
                "readOnlyHint": self.read_only,
                "destructiveHint": self.destructive,
                "idempotentHint": self.idempotent,
                "openWorldHint": self.open_world,
            },
        }


# --- the JSON schemas of the inputs, and the check of the subset they use ---------------------


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _string(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **more}


_DOC_ID = _string("a document id: s<n> for one the company sent, r<n> for one it received", pattern="^[sr][0-9]+$")
_RECEIVED_ID = _string("the id of a received document (r<n>)", pattern="^r[0-9]+$")
_IDEMPOTENCY = _string(
    "optional: retry with the same key and the first answer is given again instead of acting twice",
    minLength=1, maxLength=255, pattern="^[ -~]+$",
)  # fmt: skip
_XML_DOCUMENT = _string("the UBL document as XML text (Invoice, CreditNote, Order, ...)", minLength=1)
_WEBHOOK_ID = _string("the webhook's id (a UUID)")
_EVENTS = {"type": "array", "items": {"enum": list(EVENTS)}, "minItems": 1, "description": "events to receive"}
_CURSOR = _string("the next_cursor of the previous page")
_OBJECTS = {"type": "array", "items": {"type": "object"}}


def check_arguments(schema: dict[str, Any], value: Any, where: str = "arguments") -> str | None:
    """Why ``value`` breaks ``schema`` (the subset of JSON Schema the tools use), or None."""
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{where} must be an integer"
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            return f"{where} must be from {schema.get('minimum')} to {schema.get('maximum')}"
    elif kind in types and not isinstance(value, types[kind]):
        return f"{where} must be a{'n' if kind in ('object', 'array') else ''} {kind}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {', '.join(map(str, schema['enum']))}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            return f"{where} has the wrong length"
        if "pattern" in schema:
            if not re.search(schema["pattern"], value):
                return f"{where} must match {schema['pattern']}"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return f"{where} needs at least {schema['minItems']} item(s)"
        for index, item in enumerate(value):
            if "items" in schema and (broken := check_arguments(schema["items"], item, f"{where}[{index}]")):
                return broken
    if isinstance(value, dict) and kind == "object":
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                return f"{where}.{name} is required"
        for name, item in value.items():
            if name not in properties:
                if schema.get("additionalProperties", True) is False:
                    return f"{where}.{name} is not an argument of this tool"
                continue
            if broken := check_arguments(properties[name], item, f"{where}.{name}"):
                return broken
    return None


# --- answers ----------------------------------------------------------------------------------


def _text(value: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}]


def _envelope(answer: SubResponse) -> ToolResult:
    """A JSON answer of the REST API as the tool's result."""
    body = answer.json()
    return ToolResult(_text(body), body, is_error=answer.status >= 400)


def _download(answer: SubResponse) -> ToolResult:
    if answer.content_type == "application/json" or answer.status >= 400:
        return _envelope(answer)
    return ToolResult(_text(answer.body.decode("utf-8", "replace")))


def _query(args: dict[str, Any], *names: str) -> dict[str, str]:
    """The given arguments as query parameters, as the REST API spells them."""
    query: dict[str, str] = {}
    for name in names:
        value = args.get(name)
        if value is not None:
            query[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return query


def _key(args: dict[str, Any]) -> dict[str, str]:
    key = args.get("idempotency_key")
    return {"Idempotency-Key": key} if key else {}


def _json_body(args: dict[str, Any], *names: str) -> bytes:
    return json.dumps({n: args[n] for n in names if n in args}).encode()


# --- the tools --------------------------------------------------------------------------------


async def lookup_participant(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """SML, then the SMP's signed answer, then the endpoint for the document type."""
    try:
        participant = smp.ParticipantId.parse(args["participant"])
        wanted = args.get("document_type")
        document_type = smp.DocumentTypeId.parse(wanted) if wanted else DEFAULT_DOCUMENT.document_type
        process = smp.ProcessId.parse(args["process"]) if args.get("process") else None
    except smp.IdentifierError as exc:
        error = {"success": False, "error": {"code": "validation_error", "message": f"invalid identifier: {exc}"}}
        return ToolResult(_text(error), error, is_error=True)
    client = ctx.request.app[RUNTIME].discovery
    data: dict[str, Any] = {
        "participant": str(participant), "document_type": str(document_type),
        "registered": False, "smp_url": None, "supported_document_types": [], "endpoint": None, "error": None,
    }  # fmt: skip
    retryable = False
    try:
        data["smp_url"], supported = await client.service_group(participant)
        data["registered"] = True
        data["supported_document_types"] = [str(d) for d in supported]
        route = await client.find_endpoint(participant, document_type, process)
        cert = route.endpoint.certificate
        data["process"] = str(route.process)
        data["endpoint"] = {
            "url": route.endpoint.url,
            "transport_profile": route.endpoint.transport_profile,
            "certificate_subject": cert.subject.rfc4514_string(),
            "certificate_valid_until": cert.not_valid_after_utc.isoformat(),
            "technical_contact": route.endpoint.technical_contact,
        }
        data["steps"] = list(route.steps)
    except smp.DiscoveryError as exc:
        retryable = exc.retryable
        data["error"] = {"code": type(exc).__name__, "message": str(exc), "retryable": exc.retryable}
    body = {"success": data["error"] is None, "data": data}
    return ToolResult(_text(body), body, is_error=retryable)  # "not found" is an answer, an outage is not


async def validate_document(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    answer = await ctx.rest.call(
        "POST", "/v1/validate", body=args["document"].encode("utf-8"), content_type="application/xml"
    )
    return _envelope(answer)


async def send_document(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    query = _query(args, "receiver", "sender", "document_type", "process", "country")
    answer = await ctx.rest.call(
        "POST", "/v1/documents", query=query, body=args["document"].encode("utf-8"),
        content_type="application/xml", headers=_key(args),
    )  # fmt: skip
    return _envelope(answer)


async def get_document(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return _envelope(await ctx.rest.call("GET", f"/v1/documents/{segment(args['id'])}"))


async def get_audit(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return _envelope(await ctx.rest.call("GET", f"/v1/documents/{segment(args['id'])}/audit"))


async def list_documents(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    query = _query(
        args, "direction", "acknowledged", "sender", "document_type", "status",
        "received_at_start", "received_at_end", "limit", "cursor",
    )  # fmt: skip
    return _envelope(await ctx.rest.call("GET", "/v1/documents", query=query))


async def download_document(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    part = args.get("part", "document")
    return _download(await ctx.rest.call("GET", f"/v1/documents/{segment(args['id'])}/{part}"))


async def list_attachments(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return _envelope(await ctx.rest.call("GET", f"/v1/documents/{segment(args['id'])}/attachments"))


async def download_attachment(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    doc_id, index = segment(args["id"]), args["index"]
    answer = await ctx.rest.call("GET", f"/v1/documents/{doc_id}/attachments/{index}")
    if answer.status >= 400:
        return _envelope(answer)
    resource = {
        "uri": f"peppol-gateway:///v1/documents/{doc_id}/attachments/{index}",
        "mimeType": answer.content_type,
        "blob": base64.b64encode(answer.body).decode("ascii"),
    }
    return ToolResult([{"type": "resource", "resource": resource}])


async def acknowledge_document(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return _envelope(await ctx.rest.call("POST", f"/v1/documents/{segment(args['id'])}/acknowledge"))


async def answer_document(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    body = _json_body(args, "type", "code", "note", "reasons", "actions", "lines", "issues")
    answer = await ctx.rest.call(
        "POST", f"/v1/documents/{segment(args['id'])}/response", body=body,
        content_type="application/json", headers=_key(args),
    )  # fmt: skip
    return _envelope(answer)


async def list_webhooks(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return _envelope(await ctx.rest.call("GET", "/v1/company/notifications"))


async def create_webhook(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    answer = await ctx.rest.call(
        "POST", "/v1/company/notifications", body=_json_body(args, "destination", "events", "destination_type"),
        content_type="application/json", headers=_key(args),
    )  # fmt: skip
    return _envelope(answer)


async def update_webhook(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    answer = await ctx.rest.call(
        "PATCH", f"/v1/company/notifications/{segment(args['id'])}",
        body=_json_body(args, "destination", "events"), content_type="application/json",
    )  # fmt: skip
    return _envelope(answer)


async def delete_webhook(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return _envelope(await ctx.rest.call("DELETE", f"/v1/company/notifications/{segment(args['id'])}"))


async def rotate_webhook_secret(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return _envelope(await ctx.rest.call("POST", f"/v1/company/notifications/{segment(args['id'])}/rotate_secret"))


async def list_webhook_deliveries(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    query = _query(args, "status", "webhook_id", "limit", "cursor")
    return _envelope(await ctx.rest.call("GET", "/v1/webhook_deliveries", query=query))


async def retry_webhook_delivery(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return _envelope(await ctx.rest.call("POST", f"/v1/webhook_deliveries/{args['id']}/retry"))


async def get_usage(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    return _envelope(await ctx.rest.call("GET", "/v1/usage"))


_NO_ARGUMENTS = _object({})

TOOLS: tuple[Tool, ...] = (
    Tool(
        "lookup_participant", "Look up a Peppol participant",
        "Find a participant on the Peppol network (SML, then its SMP's signed answer): whether it is "
        "registered, the document types it receives and the access point a document type goes to. "
        "Without document_type the BIS Billing 3.0 invoice is looked up.",
        _object({
            "participant": _string("scheme:id, e.g. 0192:991825827 (or iso6523-actorid-upis::0192:991825827)"),
            "document_type": _string("document type identifier (scheme::value or value)"),
            "process": _string("process identifier (default: the first one offered)"),
        }, "participant"),
        lookup_participant, open_world=True,
    ),
    Tool(
        "validate_document", "Validate a document",
        "Check a UBL document against the same rule layers (UBL schema, EN 16931, Peppol BIS) as when it is "
        "sent, without sending it.",
        _object({"document": _XML_DOCUMENT}, "document"), validate_document,
    ),
    Tool(
        "send_document", "Send a document",
        "Queue a UBL document (invoice, credit note, order, ...) for delivery over Peppol. Sender, receiver, "
        "document type and process come from the document unless given. Answers with the document's id (s<n>) "
        "and status; follow it with get_document and get_audit. Needs the documents:send scope.",
        _object({
            "document": _XML_DOCUMENT,
            "receiver": _string("the receiver's participant id, if not the document's"),
            "sender": _string("the sender's participant id (one of the company's), if not the document's"),
            "document_type": _string("the Peppol document type identifier, if not derived"),
            "process": _string("the Peppol process identifier, if not derived"),
            "country": _string("the sender's country (C1), if not in the document"),
            "idempotency_key": _IDEMPOTENCY,
        }, "document"),
        send_document, read_only=False, idempotent=False, open_world=True,
    ),
    Tool(
        "get_document", "Get a document's status",
        "A sent or received document: status (queued, sending, delivered, accepted, rejected, failed, received, "
        "answered), parties, type, errors and any response.",
        _object({"id": _DOC_ID}, "id"), get_document,
    ),
    Tool(
        "get_audit", "Get a document's audit trail",
        "Every state a document went through, with when and why.",
        _object({"id": _DOC_ID}, "id"), get_audit,
    ),
    Tool(
        "list_documents", "List the mailbox",
        "Documents received (default) or sent, newest first, a page at a time (next_cursor in the answer). "
        "acknowledged=false lists what was not fetched yet.",
        _object({
            "direction": {"enum": ["RECEIVED", "SENT"], "description": "RECEIVED (default) or SENT"},
            "acknowledged": {"type": "boolean", "description": "received documents: acknowledged or not"},
            "sender": _string("received documents from this participant"),
            "document_type": _string("only this document type"),
            "status": _string("sent documents in this state"),
            "received_at_start": _string("from this time (ISO 8601)"),
            "received_at_end": _string("until this time (ISO 8601)"),
            "limit": {"type": "integer", "minimum": 1, "maximum": 500, "description": "page size (default 100)"},
            "cursor": _CURSOR,
        }),
        list_documents,
    ),
    Tool(
        "download_document", "Download a document",
        "The business document itself as XML (part=document, the default) or with its Peppol envelope "
        "(part=envelope). Needs the documents:receive scope.",
        _object({"id": _DOC_ID, "part": {"enum": ["document", "envelope"]}}, "id"), download_document,
    ),
    Tool(
        "list_attachments", "List a document's attachments",
        "The files embedded in a document (index, filename, type, size).",
        _object({"id": _DOC_ID}, "id"), list_attachments,
    ),
    Tool(
        "download_attachment", "Download an attachment",
        "One embedded file of a document, as a binary resource.",
        _object({"id": _DOC_ID, "index": {"type": "integer", "minimum": 0, "maximum": 10_000}}, "id", "index"),
        download_attachment,
    ),
    Tool(
        "acknowledge_document", "Acknowledge a received document",
        "Mark a received document as fetched, so acknowledged=false no longer lists it.",
        _object({"id": _RECEIVED_ID}, "id"), acknowledge_document, read_only=False,
    ),
    Tool(
        "answer_document", "Answer a received document",
        "Send an invoice response (type invoice_response, code e.g. AP accepted, RE rejected, PD paid, with "
        "reasons/actions), an order response (order_response, code AP/RE/CA with lines) or a message level "
        "response (mlr, code AP/AB/RE with issues) to a received document's sender. Once per document.",
        _object({
            "id": _RECEIVED_ID,
            "type": {"enum": ["invoice_response", "order_response", "mlr"]},
            "code": _string("the response code"),
            "note": _string("free text for the receiver"),
            "reasons": {**_OBJECTS, "description": "invoice response: [{code, text}]"},
            "actions": {**_OBJECTS, "description": "invoice response: [{code, text}]"},
            "lines": {**_OBJECTS, "description": "order response: [{line_id, status, quantity, unit_code, note}]"},
            "issues": {**_OBJECTS, "description": "mlr: [{location, code, text}]"},
            "idempotency_key": _IDEMPOTENCY,
        }, "id", "type", "code"),
        answer_document, read_only=False, idempotent=False, open_world=True,
    ),
    Tool(
        "list_webhooks", "List webhooks", "The webhooks registered by the caller.", _NO_ARGUMENTS, list_webhooks
    ),
    Tool(
        "create_webhook", "Create a webhook",
        "Register an https URL to receive signed JSON events (all events unless listed). The answer holds the "
        "signing secret, shown once. Needs the webhooks:write scope.",
        _object({
            "destination": _string("the URL the events are POSTed to"),
            "events": _EVENTS,
            "destination_type": {"enum": ["WEBHOOK", "VENDOR_WEBHOOK"], "description": "VENDOR_WEBHOOK: operators"},
            "idempotency_key": _IDEMPOTENCY,
        }, "destination"),
        create_webhook, read_only=False, idempotent=False,
    ),
    Tool(
        "update_webhook", "Change a webhook", "Change a webhook's destination or events.",
        _object({"id": _WEBHOOK_ID, "destination": _string("the new URL"), "events": _EVENTS}, "id"),
        update_webhook, read_only=False,
    ),
    Tool(
        "delete_webhook", "Delete a webhook", "Stop sending events to a webhook.",
        _object({"id": _WEBHOOK_ID}, "id"), delete_webhook, read_only=False, destructive=True,
    ),
    Tool(
        "rotate_webhook_secret", "Rotate a webhook's secret",
        "A new signing secret (shown once), in force at once, also for retries of older events.",
        _object({"id": _WEBHOOK_ID}, "id"), rotate_webhook_secret, read_only=False, idempotent=False,
    ),
    Tool(
        "list_webhook_deliveries", "List webhook deliveries",
        "What was delivered to the caller's webhooks and what failed, newest first.",
        _object({
            "status": {"enum": [str(state) for state in DeliveryState]},
            "webhook_id": _WEBHOOK_ID,
            "limit": {"type": "integer", "minimum": 1, "maximum": 500},
            "cursor": _CURSOR,
        }),
        list_webhook_deliveries,
    ),
    Tool(
        "retry_webhook_delivery", "Retry a webhook delivery", "Deliver a failed event again.",
        _object({"id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}, "id"),
        retry_webhook_delivery, read_only=False,
    ),
    Tool("get_usage", "Get usage", "Documents sent and received this month.", _NO_ARGUMENTS, get_usage),
)  # fmt: skip
