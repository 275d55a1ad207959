"""The MCP server at /v1/mcp, driven by the official MCP Python SDK over Streamable HTTP against
two in-process access points: an invoice sent through tools on one arrives in the mailbox of
the other, is read there, and the REST API's scopes and tenants hold for tools too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from gateway.api.mcp import PROTOCOL_VERSIONS
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.security.credentials import create_api_key
from tests.support.api import token
from tests.support.gateways import InProcessGateway, in_process_gateway, new_database, register_company
from tests.support.paths import EXAMPLES

NORWAY = "0192:991825827"
FINLAND = "0216:003720774740"
SWEDEN = "0007:5567321707"


@dataclass
class Network:
    a: InProcessGateway
    b: InProcessGateway
    norway_token: str  # a company on A: the invoice's sender
    norway_read_only: str  # the same company, with the scope "company" only
    finland_token: str  # on B: the invoice's receiver
    sweden_token: str  # another company on B


@pytest.fixture(scope="module")
async def network(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[Network]:
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a,
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot) as b,
        aiohttp.ClientSession() as session,
    ):
        tokens = []
        for gw, name, country, participant in (
            (a, "Nordic Supplies AS", "NO", NORWAY),
            (b, "Suomen Osto Oy", "FI", FINLAND),
            (b, "Svenska Inköp AB", "SE", SWEDEN),
        ):
            company = await register_company(gw, name, country, participant, "INVOICE_AND_CREDIT_NOTE")
            _, key = await create_api_key(gw.pool, company_id=company)
            tokens.append((await token(session, gw.url, str(company), key)).token)
            if participant == NORWAY:
                tokens.append((await token(session, gw.url, str(company), key, scope="company")).token)
        yield Network(a, b, *tokens)


@asynccontextmanager
async def mcp(gw: InProcessGateway, bearer: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=30) as http,
        Client(streamable_http_client(f"{gw.url}/v1/mcp", http_client=http)) as client,
    ):
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> tuple[bool, Any]:
    """(is_error, structured content) of one tool call."""
    result = await client.call_tool(tool, arguments)
    return bool(result.is_error), result.structured_content


async def test_an_invoice_sent_through_tools_is_read_through_tools_on_the_other_side(network: Network) -> None:
    invoice = (EXAMPLES / "invoice.xml").read_text()
    async with mcp(network.a, network.norway_token) as norway:
        assert norway.protocol_version == PROTOCOL_VERSIONS[0]  # the SDK fell back from server/discover
        names = {tool.name for tool in (await norway.list_tools()).tools}
        assert {
            "lookup_participant", "validate_document", "send_document", "get_document", "get_audit",
            "list_documents", "download_document", "acknowledge_document", "answer_document",
            "create_webhook", "list_webhooks", "delete_webhook",
        } <= names  # fmt: skip
        assert all(tool.input_schema["type"] == "object" for tool in (await norway.list_tools()).tools)

        failed, found = await call(norway, "lookup_participant", participant=FINLAND)
        assert not failed and found["data"]["registered"], found
        assert found["data"]["endpoint"]["url"] == network.b.as4_url
        failed, found = await call(norway, "lookup_participant", participant="0192:000000000")
        assert not failed and found["data"]["registered"] is False

        failed, checked = await call(norway, "validate_document", document=invoice)
        assert not failed and checked["data"]["valid"] is True, checked
        failed, sent = await call(norway, "send_document", document=invoice, idempotency_key="mcp-1")
        assert not failed, sent
        sent_id = sent["data"]["id"]
        deadline = time.monotonic() + 30
        while True:
            failed, status = await call(norway, "get_document", id=sent_id)
            assert not failed
            if status["data"]["status"] in ("delivered", "failed") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert status["data"]["status"] == "delivered", status
        failed, audit = await call(norway, "get_audit", id=sent_id)
        assert not failed and [step["state"] for step in audit["data"]][-1] == "delivered"

    async with mcp(network.b, network.finland_token) as finland:
        failed, mailbox = await call(finland, "list_documents", direction="RECEIVED", acknowledged=False)
        assert not failed
        (entry,) = mailbox["data"]["items"]
        assert entry["sender"] == f"iso6523-actorid-upis::{NORWAY}"
        result = await finland.call_tool("download_document", {"id": entry["id"]})
        assert not result.is_error
        xml = result.content[0].text  # type: ignore[union-attr]
        assert "<cbc:ID>" in xml and "Invoice" in xml
        failed, acknowledged = await call(finland, "acknowledge_document", id=entry["id"])
        assert not failed and acknowledged["data"]["acknowledged_at"]
        failed, mailbox = await call(finland, "list_documents", acknowledged=False)
        assert mailbox["data"]["items"] == []
        failed, answered = await call(finland, "answer_document", id=entry["id"], type="invoice_response", code="AP")
        assert not failed and answered["data"]["answers"] == entry["id"], answered

        failed, hook = await call(finland, "create_webhook", destination="https://erp.example/peppol")
        assert not failed and hook["data"]["secret"].startswith("whsec_")
        failed, hooks = await call(finland, "list_webhooks")
        assert [h["id"] for h in hooks["data"]] == [hook["data"]["id"]]
        failed, _ = await call(finland, "delete_webhook", id=hook["data"]["id"])
        assert not failed

    # another company of the same access point cannot see the document, by id or in its mailbox
    async with mcp(network.b, network.sweden_token) as sweden:
        for tool in ("get_document", "download_document", "acknowledge_document"):
            failed, refused = await call(sweden, tool, id=entry["id"])
            assert failed and refused["error"]["code"] == "not_found", (tool, refused)
        failed, mailbox = await call(sweden, "list_documents")
        assert not failed and mailbox["data"]["items"] == []


async def test_a_token_without_the_scope_is_refused_by_the_tool(network: Network) -> None:
    async with mcp(network.a, network.norway_read_only) as norway:
        failed, refused = await call(norway, "send_document", document=(EXAMPLES / "invoice.xml").read_text())
        assert failed and refused["error"]["code"] == "insufficient_scope"
        failed, listed = await call(norway, "list_documents", direction="SENT")
        assert not failed  # reading is allowed with "company"
        failed, refused = await call(norway, "create_webhook", destination="https://erp.example/x")
        assert failed and refused["error"]["code"] == "insufficient_scope"


async def test_the_transport_refuses_what_it_must(network: Network) -> None:
    url = f"{network.a.url}/v1/mcp"
    auth = {"Authorization": f"Bearer {network.norway_token}"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=ping) as r:
            assert r.status == 401  # the REST API's bearer tokens
        async with http.post(url, json=ping, headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        async with http.post(url, json=ping, headers=auth) as r:
            assert r.status == 400  # no session yet
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "1999-01-01"}}
        async with http.post(url, json=init, headers=auth) as r:
            assert r.status == 200
            session = r.headers["Mcp-Session-Id"]
            assert (await r.json())["result"]["protocolVersion"] == PROTOCOL_VERSIONS[0]
        headers = {**auth, "Mcp-Session-Id": session, "MCP-Protocol-Version": PROTOCOL_VERSIONS[0]}
        async with http.post(url, json=ping, headers=headers) as r:
            assert r.status == 200 and (await r.json()) == {"jsonrpc": "2.0", "id": 1, "result": {}}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with http.post(url, json=note, headers=headers) as r:
            assert r.status == 202
        discover = {"jsonrpc": "2.0", "id": 2, "method": "server/discover"}
        async with http.post(url, json=discover, headers=headers) as r:
            assert (await r.json())["error"]["code"] == -32601
        unknown = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "rm_rf", "arguments": {}}}
        async with http.post(url, json=unknown, headers=headers) as r:
            assert (await r.json())["error"]["code"] == -32602
        wrong = {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                 "params": {"name": "get_document", "arguments": {"id": "../../companies"}}}  # fmt: skip
        async with http.post(url, json=wrong, headers=headers) as r:
            result = (await r.json())["result"]
            assert result["isError"] and result["structuredContent"]["error"]["code"] == "validation_error"
        async with http.post(url, data=b"[", headers={**headers, "Content-Type": "application/json"}) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == -32700
        async with http.post(url, json={**ping, "id": {}}, headers=headers) as r:
            assert r.status == 400 and (await r.json())["id"] is None
        async with http.post(url, json=[ping], headers=headers) as r:
            assert r.status == 400
        async with http.post(url, json=ping, headers={**headers, "MCP-Protocol-Version": "2001-01-01"}) as r:
            assert r.status == 400
        async with http.post(url, json=ping, headers={**headers, "Origin": "http://evil.example"}) as r:
            assert r.status == 403
        async with http.get(url, headers=headers) as r:
            assert r.status == 405  # no server-initiated stream
