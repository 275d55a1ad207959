"""The REST API against the real app, PostgreSQL, DNS and a second access point on loopback:
the newcomer's path (token, company, verification, profile, send, poll, download, acknowledge),
key lifecycle, idempotency, and who may call what."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import smp
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.security.credentials import create_api_key, create_operator
from gateway.webhooks.delivery import WebhookWorker, verify_signature
from tests.support.api import Caller, token
from tests.support.gateways import InProcessGateway, in_process_gateway, new_database, register_company
from tests.support.paths import EXAMPLES

FINLAND = "0216:003720774740"


@dataclass
class World:
    a: InProcessGateway
    b: InProcessGateway
    operator_id: uuid.UUID
    operator_key: str
    session: aiohttp.ClientSession
    finland_caller: Caller
    webhook_secret: str
    webhook_calls: list[tuple[bytes, str]]


@pytest.fixture
async def world(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[World]:
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a,
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot) as b,
        aiohttp.ClientSession() as session,
    ):
        finland_id = await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
        operator_id, key = await create_operator(a.pool, "Operator One")
        _, finland_key = await create_api_key(b.pool, company_id=finland_id)
        finland = await token(session, b.url, str(finland_id), finland_key)
        calls: list[tuple[bytes, str]] = []

        async def hook(request: web.Request) -> web.Response:
            calls.append((await request.read(), request.headers["X-Gateway-Signature"]))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/erp/peppol", hook)
        erp = TestServer(app)
        await erp.start_server()
        status, body = await finland.call(
            "POST",
            "/v1/company/notifications",
            json={"destination": str(erp.make_url("/erp/peppol")), "events": ["document.received"]},
        )
        assert status == 201
        yield World(a, b, operator_id, key, session, finland, body["data"]["secret"], calls)
        await erp.close()


async def new_company(
    world: World, name: str = "Nordic Supplies AS", business_id: str = "991825827"
) -> tuple[str, str]:
    operator = await token(world.session, world.a.url, str(world.operator_id), world.operator_key)
    status, body = await operator.call(
        "POST", "/v1/companies", json={"name": name, "country": "NO", "business_id": business_id}
    )
    assert status == 201, body
    return body["data"]["id"], body["data"]["api_key"]


async def test_newcomer_sends_an_invoice_and_the_receiver_polls_downloads_and_acknowledges(world: World) -> None:
    operator = await token(world.session, world.a.url, str(world.operator_id), world.operator_key)
    company_id, key = await new_company(world)
    company = await token(world.session, world.a.url, company_id, key)

    status, body = await company.call("POST", "/v1/company/profiles", json={"network": "PEPPOL", "profiles": ["ORDER"]})
    assert status == 201  # registered early; published once the company is verified
    status, body = await company.call(
        "POST",
        "/v1/documents",
        data=(EXAMPLES / "invoice.xml").read_bytes(),
        headers={"Content-Type": "application/xml"},
    )
    assert (status, body["error"]["code"]) == (403, "company_not_verified")

    status, _ = await operator.call("POST", f"/v1/companies/{company_id}/verify")
    assert status == 200
    status, body = await company.call("GET", "/v1/company/profiles")
    assert status == 200 and body["data"][0]["status"] == "active"
    assert body["data"][0]["participant_id"] == "iso6523-actorid-upis::0192:991825827"
    route = await world.b.runtime.discovery.find_endpoint(
        smp.ParticipantId.parse("0192:991825827"), smp.profile_services("ORDER")[0].document_type
    )
    assert route.endpoint.url == world.a.as4_url

    pdf = b"%PDF-1.4 a small invoice image\n"
    embedded = (
        b"<cac:AdditionalDocumentReference><cbc:ID>att-1</cbc:ID><cac:Attachment>"
        b'<cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="NS-2026-1001.pdf">'
        + base64.b64encode(pdf)
        + b"</cbc:EmbeddedDocumentBinaryObject></cac:Attachment></cac:AdditionalDocumentReference>"
    )
    invoice = (
        (EXAMPLES / "invoice.xml")
        .read_bytes()
        .replace(b"<cac:AccountingSupplierParty>", embedded + b"<cac:AccountingSupplierParty>", 1)
    )
    form = aiohttp.FormData()
    form.add_field("file", invoice, filename="invoice.xml", content_type="application/xml")
    status, body = await company.call("POST", "/v1/invoices", data=form)
    assert status == 202, body
    doc_id = body["data"]["id"]
    for _ in range(200):
        status, body = await company.call("GET", f"/v1/invoices/{doc_id}")
        if body["data"]["status"] in ("delivered", "failed"):
            break
        await asyncio.sleep(0.05)
    assert body["data"]["status"] == "delivered", body
    status, audit = await company.call("GET", f"/v1/invoices/{doc_id}/audit")
    assert [a["state"] for a in audit["data"]] == ["queued", "sending", "delivered"]

    receiver = world.finland_caller
    hooks = WebhookWorker(world.b.pool)
    await hooks.fan_out()
    await hooks.deliver_due()
    await hooks._session.close()  # type: ignore[union-attr]
    received_events = [json.loads(body) for body, _ in world.webhook_calls]
    event = next(e for e in received_events if e["type"] == "document.received")
    body, signature = next((b, sig) for b, sig in world.webhook_calls if json.loads(b)["id"] == event["id"])
    assert verify_signature(world.webhook_secret, body, signature)
    assert event["data"]["sender"] == "iso6523-actorid-upis::0192:991825827"
    status, listing = await receiver.call("GET", "/v1/invoices?direction=RECEIVED&acknowledged=false")
    assert status == 200 and len(listing["data"]["items"]) == 1
    received = listing["data"]["items"][0]
    assert received["sender"] == "iso6523-actorid-upis::0192:991825827"
    status, document = await receiver.call("GET", f"/v1/invoices/{received['id']}/document")
    assert (
        status == 200
        and document.startswith(b"<?xml")
        and b"<Invoice" in document
        and b"StandardBusinessDocument" not in document
    )
    status, envelope = await receiver.call("GET", f"/v1/invoices/{received['id']}/envelope")
    assert b"StandardBusinessDocumentHeader" in envelope
    status, attachments = await receiver.call("GET", f"/v1/invoices/{received['id']}/attachments")
    assert attachments["data"] == [
        {"index": 0, "filename": "NS-2026-1001.pdf", "mime_code": "application/pdf", "size": len(pdf)}
    ]
    status, attachment = await receiver.call("GET", f"/v1/invoices/{received['id']}/attachments/0")
    assert (status, attachment) == (200, pdf)
    status, acked = await receiver.call("POST", f"/v1/invoices/{received['id']}/acknowledge")
    assert status == 200 and acked["data"]["acknowledged_at"]
    status, listing = await receiver.call("GET", "/v1/invoices?direction=RECEIVED&acknowledged=false")
    assert listing["data"]["items"] == []


async def test_token_endpoint_speaks_oauth2(world: World) -> None:
    company_id, key = await new_company(world)
    async with world.session.post(world.a.url + "/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": company_id, "client_secret": key, "scope": "documents:send"
    }) as r:  # fmt: skip
        body = await r.json()
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer" and body["scope"] == "documents:send" and body["expires_in"] == 3600
    async with world.session.post(world.a.url + "/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": company_id, "client_secret": key + "x"
    }) as r:  # fmt: skip
        assert r.status == 401 and (await r.json())["error"] == "invalid_client"
    async with world.session.post(world.a.url + "/oauth2/token", data={"grant_type": "password"}) as r:
        assert (await r.json())["error"] == "unsupported_grant_type"


async def test_missing_bad_and_revoked_tokens_get_401_with_a_code(world: World) -> None:
    company_id, key = await new_company(world)
    anonymous = Caller(world.session, world.a.url)
    status, body = await anonymous.call("GET", "/v1/documents")
    assert (status, body["error"]["code"]) == (401, "authentication_required")
    status, body = await Caller(world.session, world.a.url, "gwt_nonsense").call("GET", "/v1/documents")
    assert (status, body["error"]["code"]) == (401, "invalid_token")
    company = await token(world.session, world.a.url, company_id, key)
    status, keys = await company.call("GET", "/v1/api_keys")
    key_id = keys["data"][0]["id"]
    status, body = await company.call("DELETE", f"/v1/api_keys/{key_id}")
    assert status == 200 and body["data"]["status"] == "revoked"
    status, body = await company.call("GET", "/v1/documents")
    assert (status, body["error"]["code"]) == (401, "invalid_token")


async def test_api_key_lifecycle(world: World) -> None:
    company_id, key = await new_company(world)
    company = await token(world.session, world.a.url, company_id, key)
    status, created = await company.call(
        "POST", "/v1/api_keys", json={"label": "erp", "scopes": ["company", "documents:receive"]}
    )
    assert status == 201 and created["data"]["api_key"].startswith("gwk_")
    new_id, new_secret = created["data"]["id"], created["data"]["api_key"]
    status, listing = await company.call("GET", "/v1/api_keys")
    assert all("api_key" not in k for k in listing["data"])  # shown once
    assert {k["status"] for k in listing["data"]} == {"active"}
    soon = "2099-01-01T00:00:00Z"
    status, updated = await company.call("PATCH", f"/v1/api_keys/{new_id}", json={"label": "erp-2", "expires_at": soon})
    assert updated["data"]["label"] == "erp-2" and updated["data"]["expires_at"].startswith("2099")
    status, rotated = await company.call("POST", f"/v1/api_keys/{new_id}/rotate", json={"grace_seconds": 600})
    assert status == 201 and rotated["data"]["api_key"] != new_secret
    old = await token(world.session, world.a.url, company_id, new_secret)  # still valid in its grace period
    status, _ = await old.call("GET", "/v1/documents")
    assert status == 200
    status, body = await company.call("POST", "/v1/api_keys", json={"scopes": ["operator"]})
    assert (status, body["error"]["code"]) == (400, "validation_error")


async def test_idempotency_key_returns_the_first_answer_and_sends_once(world: World) -> None:
    operator = await token(world.session, world.a.url, str(world.operator_id), world.operator_key)
    company_id, key = await new_company(world)
    await operator.call("POST", f"/v1/companies/{company_id}/verify")
    company = await token(world.session, world.a.url, company_id, key)
    await company.call("POST", "/v1/company/profiles", json={"profiles": ["ORDER"]})
    document = (EXAMPLES / "invoice.xml").read_bytes()
    headers = {"Content-Type": "application/xml", "Idempotency-Key": "erp-batch-17"}
    first = await company.call("POST", "/v1/documents", data=document, headers=headers)
    second = await company.call("POST", "/v1/documents", data=document, headers=headers)
    assert first[0] == second[0] == 202
    assert first[1]["data"]["id"] == second[1]["data"]["id"]
    count = await world.a.pool.fetchval(
        "SELECT count(*) FROM outbound_messages WHERE company_id = $1", uuid.UUID(company_id)
    )
    assert count == 1


async def test_invalid_profile_requests_name_the_field(world: World) -> None:
    company_id, key = await new_company(world)
    company = await token(world.session, world.a.url, company_id, key)
    status, body = await company.call("POST", "/v1/company/profiles", json={"profiles": ["PIZZA"]})
    assert (status, body["error"]["details"]["field"]) == (400, "profiles")
    status, body = await company.call(
        "POST", "/v1/company/profiles", json={"profiles": ["ORDER"], "participant_id": "0192:991825828"}
    )
    assert (status, body["error"]["details"]["field"]) == (400, "participant_id")
    assert "check digit" in body["error"]["message"]


async def test_authorisation_matrix(world: World) -> None:
    """Every (caller, endpoint) pair answers as allowed or denied, tenants never see each other."""
    operator_x = await token(world.session, world.a.url, str(world.operator_id), world.operator_key)
    other_operator_id, other_key = await create_operator(world.a.pool, "Operator Two")
    operator_y = await token(world.session, world.a.url, str(other_operator_id), other_key)
    a_id, a_key = await new_company(world, "Company A", "991825827")
    b_id, b_key = await new_company(world, "Company B", "745707327")
    company_a = await token(world.session, world.a.url, a_id, a_key)
    company_b = await token(world.session, world.a.url, b_id, b_key)
    receive_only = await token(world.session, world.a.url, a_id, a_key, scope="company documents:receive")
    callers = {
        "operator_x": operator_x,
        "operator_y": operator_y,
        "company_a": company_a,
        "company_b": company_b,
        "receive_only": receive_only,
    }
    matrix: list[tuple[str, str, dict[str, int]]] = [
        (
            "GET",
            f"/v1/companies/{a_id}",
            {"operator_x": 200, "operator_y": 404, "company_a": 200, "company_b": 404, "receive_only": 200},
        ),
        (
            "POST",
            f"/v1/companies/{a_id}/verify",
            {"operator_x": 200, "operator_y": 404, "company_a": 403, "company_b": 403, "receive_only": 403},
        ),
        (
            "POST",
            "/v1/companies",
            {"operator_x": 400, "operator_y": 400, "company_a": 403, "company_b": 403, "receive_only": 403},
        ),
        (
            "GET",
            "/v1/documents?direction=RECEIVED",
            {"operator_x": 403, "operator_y": 403, "company_a": 200, "company_b": 200, "receive_only": 200},
        ),
        (
            "POST",
            "/v1/documents",
            {"operator_x": 403, "operator_y": 403, "company_a": 400, "company_b": 403, "receive_only": 403},
        ),
        (
            "POST",
            "/v1/company/profiles",
            {"operator_x": 403, "operator_y": 403, "company_a": 400, "company_b": 400, "receive_only": 403},
        ),
        (
            "POST",
            "/v1/api_keys",
            {"operator_x": 201, "operator_y": 201, "company_a": 201, "company_b": 201, "receive_only": 403},
        ),
        (
            "GET",
            "/v1/documents/r1",
            {"operator_x": 403, "operator_y": 403, "company_a": 404, "company_b": 404, "receive_only": 404},
        ),
    ]
    failures = []
    for method, path, expected in matrix:
        for name, caller in callers.items():
            kw: dict[str, Any] = {"json": {}} if method == "POST" and "documents" not in path else {}
            if method == "POST" and path == "/v1/documents":
                kw = {"data": b"not xml", "headers": {"Content-Type": "application/xml"}}
            status, _ = await caller.call(method, path, **kw)
            if status != expected[name]:
                failures.append(f"{name} {method} {path}: {status}, expected {expected[name]}")
    assert failures == []


async def test_rate_limit_per_key_answers_429_with_retry_after(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    async with (
        in_process_gateway(
            dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False, PEPPOL_HTTP_RATE_LIMIT="3"
        ) as gw,
        aiohttp.ClientSession() as session,
    ):
        operator_id, key = await create_operator(gw.pool, "Busy operator")
        operator = await token(session, gw.url, str(operator_id), key)
        statuses = []
        for _ in range(4):
            async with session.get(
                gw.url + "/v1/companies", headers={"Authorization": f"Bearer {operator.token}"}
            ) as r:
                statuses.append(r.status)
                headers = r.headers
                body = await r.json()
        assert statuses == [200, 200, 200, 429]
        # a token that no longer admits its holder is refused without taking from the key's bucket
        tokens = "SELECT tokens FROM rate_buckets"
        before = await gw.pool.fetchval(tokens)
        await gw.pool.execute("UPDATE access_tokens SET expires_at = now() - interval '1 second'")
        async with session.get(gw.url + "/v1/companies", headers={"Authorization": f"Bearer {operator.token}"}) as r:
            assert r.status == 401
        assert await gw.pool.fetchval(tokens) == before
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert (
            int(headers["Retry-After"]) >= 1
            and headers["X-RateLimit-Limit"] == "3"
            and headers["X-RateLimit-Remaining"] == "0"
        )


async def test_usage_counts_this_months_documents(world: World) -> None:
    operator = await token(world.session, world.a.url, str(world.operator_id), world.operator_key)
    company_id, key = await new_company(world)
    await operator.call("POST", f"/v1/companies/{company_id}/verify")
    company = await token(world.session, world.a.url, company_id, key)
    await company.call("POST", "/v1/company/profiles", json={"profiles": ["ORDER"]})
    await company.call(
        "POST",
        "/v1/documents",
        data=(EXAMPLES / "invoice.xml").read_bytes(),
        headers={"Content-Type": "application/xml"},
    )
    status, body = await company.call("GET", "/v1/usage")
    assert status == 200
    assert body["data"]["companies"][0]["sent"] == 1 and body["data"]["companies"][0]["received"] == 0
    status, body = await operator.call("GET", "/v1/usage")
    assert [c["company_id"] for c in body["data"]["companies"]] == [company_id]


async def test_invalid_invoice_is_refused_at_submission_with_its_rules(world: World) -> None:
    operator = await token(world.session, world.a.url, str(world.operator_id), world.operator_key)
    company_id, key = await new_company(world)
    await operator.call("POST", f"/v1/companies/{company_id}/verify")
    company = await token(world.session, world.a.url, company_id, key)
    await company.call("POST", "/v1/company/profiles", json={"profiles": ["ORDER"]})
    bad = (
        (EXAMPLES / "invoice.xml")
        .read_bytes()
        .replace(b'<cbc:PayableAmount currencyID="EUR">480.00', b'<cbc:PayableAmount currencyID="EUR">9.00')
    )
    status, body = await company.call("POST", "/v1/invoices", data=bad, headers={"Content-Type": "application/xml"})
    assert (status, body["error"]["code"]) == (400, "validation_error")
    assert "BR-CO-16" in body["error"]["message"]
    assert any(e["rule_id"] == "BR-CO-16" for e in body["error"]["details"]["validation"]["errors"])
    status, body = await company.call("POST", "/v1/validate", data=bad, headers={"Content-Type": "application/xml"})
    assert status == 200 and body["data"]["valid"] is False
    count = await world.a.pool.fetchval(
        "SELECT count(*) FROM outbound_messages WHERE company_id = $1", uuid.UUID(company_id)
    )
    assert count == 0


async def test_an_invoice_that_cannot_be_validated_is_refused_with_503(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in an installation without the [validation] extra: the rule layers cannot run.
    from gateway.duties import validation

    def absent(*args: object) -> None:
        raise validation.ValidationUnavailable("saxonche not installed (simulated)")

    async def in_process(self: validation.Validator, data: bytes) -> validation.ValidationResult:
        return validation.validate_document(data)

    monkeypatch.setattr(validation, "_check_paths", absent)
    monkeypatch.setattr(validation, "_ENGINE", None)
    monkeypatch.setattr(validation.Validator, "validate", in_process)
    operator = await token(world.session, world.a.url, str(world.operator_id), world.operator_key)
    company_id, key = await new_company(world)
    await operator.call("POST", f"/v1/companies/{company_id}/verify")
    company = await token(world.session, world.a.url, company_id, key)
    invoice = (EXAMPLES / "invoice.xml").read_bytes()
    status, body = await company.call("POST", "/v1/invoices", data=invoice, headers={"Content-Type": "application/xml"})
    assert (status, body["error"]["code"]) == (503, "validation_unavailable"), body
    assert "simulated" in body["error"]["message"] and "policy is reject" in body["error"]["message"]
    assert body["error"]["details"]["validation"]["status"] == "not validated"
    count = await world.a.pool.fetchval(
        "SELECT count(*) FROM outbound_messages WHERE company_id = $1", uuid.UUID(company_id)
    )
    assert count == 0


async def test_documents_have_a_content_view_listing_fields_filters_and_a_rendering(world: World) -> None:
    operator = await token(world.session, world.a.url, str(world.operator_id), world.operator_key)
    company_id, key = await new_company(world)
    company = await token(world.session, world.a.url, company_id, key)
    status, _ = await company.call("POST", "/v1/company/profiles", json={"network": "PEPPOL", "profiles": ["ORDER"]})
    status, _ = await operator.call("POST", f"/v1/companies/{company_id}/verify")
    sent_ids = []
    for name in ("invoice.xml", "credit-note.xml"):
        status, body = await company.call(
            "POST", "/v1/documents", data=(EXAMPLES / name).read_bytes(), headers={"Content-Type": "application/xml"}
        )
        assert status == 202, body
        assert body["data"]["number"] in ("NS-2026-1001", "NS-CN-2026-0007")  # kept at submission
        sent_ids.append(body["data"]["id"])
    status, listing = await company.call("GET", "/v1/documents?direction=SENT&number=ns-2026-1001")
    (item,) = listing["data"]["items"]
    assert item["id"] == sent_ids[0]
    assert {k: item[k] for k in ("number", "issue_date", "due_date", "seller_name", "buyer_name")} == {
        "number": "NS-2026-1001", "issue_date": "2026-11-24", "due_date": "2026-12-24",
        "seller_name": "Nordic Supplies AS", "buyer_name": "Suomen Osto Oy",
    }  # fmt: skip
    assert (item["payable_amount"], item["currency"]) == ("480.00", "EUR")
    status, listing = await company.call("GET", f"/v1/documents?direction=SENT&partner={FINLAND}")
    assert len(listing["data"]["items"]) == 2
    status, content = await company.call("GET", f"/v1/documents/{sent_ids[1]}/content")
    assert status == 200 and content["data"]["document"] == "credit_note"
    assert content["data"]["references"]["invoices"] == ["NS-2026-1001"]

    receiver = world.finland_caller
    for _ in range(200):
        status, listing = await receiver.call("GET", "/v1/documents?direction=RECEIVED")
        if len(listing["data"]["items"]) == 2:
            break
        await asyncio.sleep(0.05)
    items = {i["number"]: i for i in listing["data"]["items"]}
    assert set(items) == {"NS-2026-1001", "NS-CN-2026-0007"}
    assert items["NS-2026-1001"]["seller_name"] == "Nordic Supplies AS"

    async def numbers(query: str) -> set[str]:
        status, page = await receiver.call("GET", f"/v1/invoices?direction=RECEIVED&{query}")
        assert status == 200, page
        return {i["number"] for i in page["data"]["items"]}

    assert await numbers("amount_min=480&amount_max=480.00") == set(items)
    assert await numbers("amount_min=480.01") == set()
    assert await numbers("issued_from=2026-11-24&issued_to=2026-11-24") == set(items)
    assert await numbers("issued_to=2026-11-23") == set()
    assert await numbers("partner=nordic%20supp") == set(items)
    assert await numbers("partner=0192:991825827") == set(items)
    assert await numbers("partner=%25") == set()  # a wildcard is a character here
    assert await numbers("number=NS-CN-2026-0007") == {"NS-CN-2026-0007"}
    status, bad = await receiver.call("GET", "/v1/invoices?direction=RECEIVED&amount_min=lots")
    assert (status, bad["error"]["details"]["field"]) == (400, "amount_min")
    status, bad = await receiver.call("GET", "/v1/invoices?direction=RECEIVED&issued_from=24.11.2026")
    assert (status, bad["error"]["details"]["field"]) == (400, "issued_from")

    received_id = items["NS-2026-1001"]["id"]
    status, content = await receiver.call("GET", f"/v1/invoices/{received_id}/content")
    assert status == 200
    view = content["data"]
    assert (view["document"], view["number"], view["currency"]) == ("invoice", "NS-2026-1001", "EUR")
    assert view["seller"]["vat_number"] == "NO991825827MVA" and view["buyer"]["endpoint"] == FINLAND
    assert view["lines"][0]["quantity"] == "12" and view["totals"]["payable"] == "480.00"

    # a document stored before views were kept gets its view when first asked for
    async with world.b.pool.acquire() as conn:
        assert await conn.execute("DELETE FROM document_contents") == "DELETE 2"
    status, again = await receiver.call("GET", f"/v1/documents/{received_id}/content")
    assert status == 200 and again["data"] == view
    async with world.b.pool.acquire() as conn:
        assert await conn.fetchval("SELECT number FROM document_contents") == "NS-2026-1001"

    async with world.session.get(
        f"{world.b.url}/v1/invoices/{received_id}/render", headers={"Authorization": f"Bearer {receiver.token}"}
    ) as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        html = await response.text()
    assert "<h1>Invoice</h1>" in html and "Suomen Osto Oy" in html and "480.00 EUR" in html
    status, missing = await receiver.call("GET", "/v1/documents/r999/content")
    assert status == 404
