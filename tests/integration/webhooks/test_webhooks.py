"""Webhooks: registration through the API, signed deliveries to a real HTTP receiver on
loopback, and the retry schedule (every hour for 24 hours) driven by an injected clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.security.credentials import create_operator
from gateway.webhooks.delivery import WebhookWorker, sign, verify_signature
from tests.support.api import Caller, token
from tests.support.gateways import InProcessGateway, in_process_gateway, new_database


@dataclass
class Receiver:
    url: str = ""
    status: int = 200
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()

    async def hook(request: web.Request) -> web.Response:
        r.got.append((dict(request.headers), await request.read()))
        return web.Response(status=r.status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app)
    await server.start_server()
    r.url = str(server.make_url("/hook"))
    yield r
    await server.close()


@dataclass
class Setup:
    gw: InProcessGateway
    session: aiohttp.ClientSession
    operator: Caller
    company_id: str
    company: Caller


@pytest.fixture
async def setup(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[Setup]:
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as gw,
        aiohttp.ClientSession() as session,
    ):
        operator_id, operator_key = await create_operator(gw.pool, "Operator")
        operator = await token(session, gw.url, str(operator_id), operator_key)
        status, body = await operator.call(
            "POST", "/v1/companies", json={"name": "Hooked AS", "country": "NO", "business_id": "991825827"}
        )
        assert status == 201
        company = await token(session, gw.url, body["data"]["id"], body["data"]["api_key"])
        yield Setup(gw, session, operator, body["data"]["id"], company)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def _register(setup: Setup, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    status, body = await setup.company.call(
        "POST", "/v1/company/notifications", json={"destination": receiver.url, **extra}
    )
    assert status == 201, body
    return body["data"]  # type: ignore[no-any-return]


async def test_event_is_delivered_signed_to_a_real_receiver(setup: Setup, receiver: Receiver) -> None:
    hook = await _register(setup, receiver)
    assert hook["secret"].startswith("whsec_") and hook["destination_type"] == "WEBHOOK"
    await setup.operator.call("POST", f"/v1/companies/{setup.company_id}/verify")
    worker = WebhookWorker(setup.gw.pool, clock=Clock())
    assert await worker.fan_out() == 1
    assert await worker.deliver_due() == 1
    headers, body = receiver.got[0]
    event = json.loads(body)
    assert event["type"] == "company.verified" and event["company_id"] == setup.company_id
    assert headers["X-Gateway-Event-Id"] == event["id"]
    signature = headers["X-Gateway-Signature"]
    stamp = int(signature.split(",")[0][2:])
    assert verify_signature(hook["secret"], body, signature, now=stamp)
    assert not verify_signature(hook["secret"], body + b" ", signature, now=stamp)
    assert not verify_signature(hook["secret"], body, signature, now=stamp + 3600)  # replay after the window
    status, deliveries = await setup.company.call("GET", "/v1/webhook_deliveries")
    assert deliveries["data"][0]["status"] == "delivered"


async def test_failures_are_retried_hourly_then_given_up_after_a_day(setup: Setup, receiver: Receiver) -> None:
    await _register(setup, receiver)
    receiver.status = 500
    clock = Clock()
    worker = WebhookWorker(setup.gw.pool, clock=clock)
    await setup.operator.call("POST", f"/v1/companies/{setup.company_id}/verify")
    await worker.fan_out()
    assert await worker.deliver_due() == 1
    clock.now += timedelta(minutes=59)
    assert await worker.deliver_due() == 0  # not yet due
    clock.now += timedelta(minutes=1)
    assert await worker.deliver_due() == 1
    for _ in range(30):
        clock.now += timedelta(hours=1)
        await worker.deliver_due()
    status, deliveries = await setup.company.call("GET", "/v1/webhook_deliveries?status=failed")
    failed = deliveries["data"][0]
    assert failed["last_status"] == 500 and failed["attempts"] == 25  # at 0h, then hourly up to 24h
    receiver.status = 204
    status, retried = await setup.company.call("POST", f"/v1/webhook_deliveries/{failed['id']}/retry")
    assert status == 200 and retried["data"]["status"] == "pending"
    worker.clock = lambda: datetime.now(UTC)
    assert await worker.deliver_due() == 1
    status, deliveries = await setup.company.call("GET", "/v1/webhook_deliveries?status=delivered")
    assert len(deliveries["data"]) == 1


async def test_event_filter_and_fan_out_happen_once(setup: Setup, receiver: Receiver) -> None:
    await _register(setup, receiver, events=["document.received"])
    await setup.operator.call("POST", f"/v1/companies/{setup.company_id}/verify")
    worker = WebhookWorker(setup.gw.pool, clock=Clock())
    assert await worker.fan_out() == 0  # company.verified is not asked for
    await setup.gw.pool.execute(
        "INSERT INTO events (company_id, kind, payload) VALUES ($1, 'document.received', '{}')",
        uuid.UUID(setup.company_id),
    )
    assert await worker.fan_out() == 1
    assert await worker.fan_out() == 0


async def test_vendor_webhook_sees_events_of_linked_companies_only(setup: Setup, receiver: Receiver) -> None:
    status, body = await setup.operator.call("POST", "/v1/company/notifications", json={"destination": receiver.url})
    assert status == 201 and body["data"]["destination_type"] == "VENDOR_WEBHOOK"
    other_id = uuid.uuid4()
    await setup.gw.pool.execute(
        "INSERT INTO companies (id, name, country, business_id) VALUES ($1, 'Not linked', 'SE', '2120000787')", other_id
    )
    await setup.gw.pool.execute(
        "INSERT INTO events (company_id, kind, payload) VALUES ($1, 'company.verified', '{}')", other_id
    )
    await setup.operator.call("POST", f"/v1/companies/{setup.company_id}/verify")
    worker = WebhookWorker(setup.gw.pool, clock=Clock())
    assert await worker.fan_out() == 1
    await worker.deliver_due()
    assert json.loads(receiver.got[0][1])["company_id"] == setup.company_id


async def test_webhook_management(setup: Setup, receiver: Receiver) -> None:
    hook = await _register(setup, receiver)
    status, body = await setup.company.call("POST", "/v1/company/notifications", json={"destination": "ftp://x"})
    assert (status, body["error"]["details"]["field"]) == (400, "destination")
    status, body = await setup.company.call(
        "POST", "/v1/company/notifications", json={"destination": receiver.url, "events": ["nope"]}
    )
    assert (status, body["error"]["details"]["field"]) == (400, "events")
    status, body = await setup.company.call(
        "PATCH", f"/v1/company/notifications/{hook['id']}", json={"events": ["document.failed"]}
    )
    assert body["data"]["events"] == ["document.failed"]
    status, body = await setup.company.call("POST", f"/v1/company/notifications/{hook['id']}/rotate_secret")
    assert body["data"]["secret"] != hook["secret"]
    status, body = await setup.company.call("DELETE", f"/v1/company/notifications/{hook['id']}")
    assert status == 200
    status, body = await setup.company.call("GET", "/v1/company/notifications")
    assert body["data"] == []


def test_signature_format_is_stable() -> None:
    assert sign("whsec_test", b'{"a":1}', 1700000000) == (
        "t=1700000000,v1=" + __import__("hmac").new(b"whsec_test", b'1700000000.{"a":1}', "sha256").hexdigest()
    )


async def _all_pages(caller: Caller, query: str, limit: int) -> tuple[list[int], int]:
    """Every delivery id the listing gives, following ``meta.next_cursor``; and how many pages."""
    ids: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        after = f"&cursor={cursor}" if cursor else ""
        status, body = await caller.call("GET", f"/v1/webhook_deliveries?limit={limit}{query}{after}")
        assert status == 200, body
        pages += 1
        ids += [d["id"] for d in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return ids, pages
        assert len(body["data"]) == limit


async def test_deliveries_are_listed_a_page_at_a_time(setup: Setup, receiver: Receiver) -> None:
    hooks = [await _register(setup, receiver) for _ in range(2)]
    pool = setup.gw.pool

    async def add_events(count: int) -> None:
        await pool.execute(
            "INSERT INTO events (company_id, kind, payload) "
            "SELECT $1, 'document.received', '{}' FROM generate_series(1, $2)",
            uuid.UUID(setup.company_id), count,
        )  # fmt: skip
        await WebhookWorker(pool, clock=Clock()).fan_out()

    await add_events(150)
    await pool.execute("UPDATE webhook_deliveries SET status = 'failed' WHERE id % 3 = 0")
    every = [r["id"] for r in await pool.fetch("SELECT id FROM webhook_deliveries ORDER BY id DESC")]
    assert len(every) == 300

    ids, pages = await _all_pages(setup.company, "", 37)
    assert ids == every and pages == 9  # newest first, none lost or repeated

    # deliveries added while an operator pages are newer: they do not push rows onto later pages
    status, first = await setup.company.call("GET", "/v1/webhook_deliveries?limit=100")
    await add_events(20)
    cursor = first["meta"]["next_cursor"]
    seen = [d["id"] for d in first["data"]]
    while cursor is not None:
        status, body = await setup.company.call("GET", f"/v1/webhook_deliveries?limit=100&cursor={cursor}")
        seen += [d["id"] for d in body["data"]]
        cursor = body["meta"]["next_cursor"]
    assert seen == every

    failed, _ = await _all_pages(setup.company, "&status=failed", 25)
    assert failed == [i for i in every if i % 3 == 0]
    one = hooks[0]["id"]
    of_one, _ = await _all_pages(setup.company, f"&webhook_id={one}&status=pending", 50)
    expected = await pool.fetch(
        "SELECT id FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'pending' ORDER BY id DESC",
        uuid.UUID(one),
    )
    assert of_one == [r["id"] for r in expected] and len(of_one) > 50

    status, body = await setup.company.call("GET", "/v1/webhook_deliveries")
    assert len(body["data"]) == 200 and body["meta"]["next_cursor"] == str(body["data"][-1]["id"])
    status, body = await setup.operator.call("GET", f"/v1/webhook_deliveries?webhook_id={one}")
    assert (status, body["data"], body["meta"]["next_cursor"]) == (200, [], None)  # not the operator's webhook
    for query in ("limit=0", "limit=501", "cursor=abc", "status=lost", "webhook_id=nope"):
        status, body = await setup.company.call("GET", f"/v1/webhook_deliveries?{query}")
        assert (status, body["error"]["details"]["field"]) == (400, query.split("=")[0]), query
