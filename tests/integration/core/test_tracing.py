"""OpenTelemetry traces follow a document through the queue: API → outbound delivery →
discovery → AS4 send on the sending side, AS4 receive → store → webhook on the receiving side,
each with the ids an operator searches for. Spans are collected by the OpenTelemetry SDK's
in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.security.credentials import create_api_key
from gateway.webhooks.delivery import WebhookWorker
from tests.support.api import token
from tests.support.gateways import in_process_gateway, new_database, register_company, wait_for_state
from tests.support.paths import EXAMPLES

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    yield _EXPORTER


def _named(found: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    matches = [s for s in found if s.name == name]
    assert matches, f"no span {name}: {[s.name for s in found]}"
    return matches[0]


async def test_a_document_is_traced_from_the_api_to_the_receipt_and_from_receipt_to_webhook(
    spans: InMemorySpanExporter, pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    hooks: list[str] = []

    async def erp(request: web.Request) -> web.Response:
        hooks.append(await request.text())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", erp)
    erp_server = TestServer(app)
    await erp_server.start_server()
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a,
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot) as b,
        aiohttp.ClientSession() as session,
    ):
        norway = await register_company(a, "Nordic Supplies AS", "NO", "0192:991825827", "ORDER")
        finland = await register_company(b, "Suomen Osto Oy", "FI", "0216:003720774740", "INVOICE_AND_CREDIT_NOTE")
        _, key_a = await create_api_key(a.pool, company_id=norway)
        _, key_b = await create_api_key(b.pool, company_id=finland)
        sender = await token(session, a.url, str(norway), key_a)
        receiver = await token(session, b.url, str(finland), key_b)
        status, _ = await receiver.call(
            "POST", "/v1/company/notifications", json={"destination": str(erp_server.make_url("/hook"))}
        )
        assert status == 201
        spans.clear()
        status, body = await sender.call(
            "POST", "/v1/documents", data=(EXAMPLES / "invoice.xml").read_bytes(),
            headers={"Content-Type": "application/xml"},
        )  # fmt: skip
        assert status == 202
        assert await wait_for_state(a.pool, int(body["data"]["id"][1:]), {"delivered"}) == "delivered"
        hooks_worker = WebhookWorker(b.pool)
        await hooks_worker.fan_out()
        await hooks_worker.deliver_due()
        await hooks_worker.close()
        assert hooks
        found = spans.get_finished_spans()

        api = _named(found, "POST /v1/documents")
        assert api.attributes is not None and api.attributes["peppol.document_id"] == body["data"]["id"]
        sending = [_named(found, n) for n in ("outbound.deliver", "smp.discovery", "as4.send")]
        assert {s.context.trace_id for s in sending} == {api.context.trace_id}  # across the queue
        assert sending[2].attributes is not None
        assert sending[2].attributes["as4.message_id"] == body["data"]["as4_message_id"]
        assert "as4.receipt_id" in sending[2].attributes

        receiving = [_named(found, n) for n in ("as4.receive", "store.inbound", "webhook.deliver")]
        assert len({s.context.trace_id for s in receiving}) == 1
        assert receiving[0].attributes is not None
        assert receiving[0].attributes["as4.message_id"] == body["data"]["as4_message_id"]
    await erp_server.close()
