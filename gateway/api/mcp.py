"""An MCP server at ``POST /v1/mcp`` (Streamable HTTP transport), for AI agents and tools.

JSON-RPC 2.0, one message per POST, answered with one JSON response (the transport allows that
instead of an event stream). Methods: ``initialize``, ``ping``, ``tools/list``, ``tools/call``;
notifications and client responses are accepted with 202. There is no server-to-client stream:
``GET`` and ``DELETE`` on the endpoint are answered 405, which the transport allows.

Authentication is the REST API's: every POST carries ``Authorization: Bearer <token>`` (the
middleware refuses it otherwise), and each tool acts through the REST API with that token
(:mod:`gateway.api.mcp_tools`), so scopes and tenants are checked exactly as there. The session
id handed out by ``initialize`` is required on every later message but keeps nothing in memory:
each request authenticates itself, so any gateway process behind a load balancer can answer it.

The protocol revisions spoken are the handshake ones up to 2025-11-25. The stateless 2026-07-28
revision opens with ``server/discover``; that is answered "method not found", on which clients
(the official SDKs among them) fall back to ``initialize``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from gateway.api.auth import require
from gateway.api.mcp_tools import TOOLS, ToolContext, ToolResult, check_arguments
from gateway.api.subrequest import SubRequests
from gateway.core.version import __version__

__all__ = ["MCP_PATH", "PROTOCOL_VERSIONS", "add_mcp_routes"]

MCP_PATH = "/v1/mcp"
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")  # newest first
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

INSTRUCTIONS = (
    "A Peppol access point. Documents a company sent have ids s<n>, documents it received r<n>. "
    "To send: lookup_participant (is the receiver on Peppol and does it take this document type?), "
    "validate_document, send_document, then get_document / get_audit until delivered. To receive: "
    "list_documents with acknowledged=false, download_document, acknowledge_document, and answer_document "
    "for an invoice or order response. Errors carry the REST API's stable code (insufficient_scope, "
    "not_found, validation_error, duplicate_document, ...)."
)

_BY_NAME = {tool.name: tool for tool in TOOLS}

log = structlog.get_logger("gateway.api.mcp")


def _error(message_id: Any, code: int, message: str, status: int = 200) -> web.Response:
    body = {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": message}}
    return web.json_response(body, status=status)


def _result(message_id: Any, result: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "id": message_id, "result": result}, headers=headers)


def _foreign_origin(request: web.Request) -> bool:
    """A browser page of another site (DNS rebinding): its Origin names another host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.host.lower()


def negotiate(offered: Any) -> str:
    """The revision to speak: the client's when it is one of ours, else our newest."""
    return offered if offered in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]


def _initialize(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "protocolVersion": negotiate(params.get("protocolVersion")),
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": "peppol-gateway", "title": "Peppol gateway", "version": __version__},
        "instructions": INSTRUCTIONS,
    }


async def _call_tool(request: web.Request, rest: SubRequests, params: dict[str, Any]) -> dict[str, Any] | None:
    """A tool's result, or None when there is no such tool (a protocol error)."""
    tool = _BY_NAME.get(params.get("name"))  # type: ignore[arg-type]
    if tool is None:
        return None
    arguments = params.get("arguments") or {}
    broken = check_arguments(tool.input_schema, arguments)
    if broken is not None:
        error = {"success": False, "error": {"code": "validation_error", "message": broken}}
        result = ToolResult([{"type": "text", "text": json.dumps(error)}], error, is_error=True)
    else:
        result = await tool.run(ToolContext(request, rest), arguments)
    log.info("mcp_tool_called", tool=tool.name, is_error=result.is_error)
    return result.as_json()


async def mcp_endpoint(request: web.Request) -> web.Response:
    """One JSON-RPC message in, one JSON-RPC answer (or 202) out."""
    require(request)
    if _foreign_origin(request):
        return _error(None, INVALID_REQUEST, "requests from another origin are refused", 403)
    rest = SubRequests(request)  # before the body is read
    if request.content_type != "application/json":
        return _error(None, INVALID_REQUEST, "send the JSON-RPC message as application/json", 415)
    try:
        message = json.loads(await request.read())
    except ValueError:
        return _error(None, PARSE_ERROR, "the body is not JSON", 400)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _error(None, INVALID_REQUEST, "send one JSON-RPC 2.0 message (batches are not accepted)", 400)
    method, message_id = message.get("method"), message.get("id")
    if "id" in message and (isinstance(message_id, bool) or not isinstance(message_id, str | int)):
        return _error(None, INVALID_REQUEST, "a request's id is a string or an integer", 400)
    if method != "initialize":
        if not request.headers.get(SESSION_HEADER):
            return _error(message_id, INVALID_REQUEST, f"the {SESSION_HEADER} header from initialize is missing", 400)
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version not in PROTOCOL_VERSIONS:
            spoken = ", ".join(PROTOCOL_VERSIONS)
            return _error(message_id, INVALID_REQUEST, f"protocol version {version} is not one of {spoken}", 400)
    if not isinstance(method, str) or "id" not in message:
        return web.Response(status=202)  # a notification, or the client's answer to nothing we asked
    params = message.get("params") or {}
    if not isinstance(params, dict):
        return _error(message_id, INVALID_PARAMS, "params is an object")
    if method == "initialize":
        session = secrets.token_urlsafe(24)
        client = params.get("clientInfo")
        log.info("mcp_session_started", client=str(client.get("name", ""))[:100] if isinstance(client, dict) else "")
        return _result(message_id, _initialize(params), {SESSION_HEADER: session})
    if method == "ping":
        return _result(message_id, {})
    if method == "tools/list":
        return _result(message_id, {"tools": [tool.listing() for tool in TOOLS]})
    if method == "tools/call":
        result = await _call_tool(request, rest, params)
        if result is None:
            return _error(message_id, INVALID_PARAMS, f"no tool named {params.get('name')!r}")
        return _result(message_id, result)
    return _error(message_id, METHOD_NOT_FOUND, f"method {method!r} is not offered")


def add_mcp_routes(app: web.Application) -> None:
    app.router.add_post(MCP_PATH, mcp_endpoint)
