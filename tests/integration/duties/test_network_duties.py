"""Peppol network duties between two real access points (real PostgreSQL, DNS, SMP, AS4 over
HTTP): Message Level Status on rejection and on request, never in answer to an MLS; invoice and
order responses from the mailbox, linked to what they answer; and the monthly TSR and EUSR built
from what was exchanged, valid under the official reporting rules and delivered like any other
document."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from lxml import etree

import smp
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.documents.envelope import SBDH_NS
from gateway.duties import queries as duties_queries
from gateway.duties.report_documents import EUSR_NS, TSR_NS
from gateway.duties.responses import build_mls
from gateway.outbound.submission import derive_submission, submit_document
from gateway.security.credentials import create_api_key, create_operator
from tests.support.api import Caller, token
from tests.support.gateways import (
    InProcessGateway,
    in_process_gateway,
    new_database,
    register_company,
    send_as_peer,
    wait_for_state,
)
from tests.support.paths import EXAMPLES

NORWAY = "0192:991825827"
FINLAND = "0216:003720774740"
REPORTING = "9925:be0848934496"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Pair:
    a: InProcessGateway  # Nordic Supplies AS (NO), seat POP000001
    b: InProcessGateway  # Suomen Osto Oy (FI), seat POP000002, and the reporting stand-in
    norway: Caller
    finland: Caller
    norway_id: uuid.UUID
    finland_id: uuid.UUID
    operator_b: Caller


@pytest.fixture
async def pair(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[Pair]:
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a,
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot) as b,
        aiohttp.ClientSession() as session,
    ):
        norway_id = await register_company(
            a, "Nordic Supplies AS", "NO", NORWAY, "ORDER", "INVOICE_RESPONSE", "MESSAGE_LEVEL_RESPONSE"
        )
        finland_id = await register_company(
            b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE", "ORDER_RESPONSE"
        )
        await register_company(b, "OpenPeppol reporting (stand-in)", "BE", REPORTING, "PEPPOL_REPORTING")
        operator_id, operator_key = await create_operator(b.pool, "Operator B")
        callers = []
        for gw, company in ((a, norway_id), (b, finland_id)):
            _, key = await create_api_key(gw.pool, company_id=company)
            callers.append(await token(session, gw.url, str(company), key))
        operator_b = await token(session, b.url, str(operator_id), operator_key)
        yield Pair(a, b, callers[0], callers[1], norway_id, finland_id, operator_b)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "the condition was not reached in time"
        await asyncio.sleep(0.1)


async def send(caller: Caller, document: bytes, **query: str) -> dict[str, Any]:
    status, body = await caller.call(
        "POST", "/v1/documents", data=document, params=query, headers={"Content-Type": "application/xml"}
    )
    assert status == 202, body
    return body["data"]  # type: ignore[no-any-return]


async def document(caller: Caller, doc_id: str) -> dict[str, Any]:
    status, body = await caller.call("GET", f"/v1/documents/{doc_id}")
    assert status == 200, body
    return body["data"]  # type: ignore[no-any-return]


async def mailbox(caller: Caller) -> list[dict[str, Any]]:
    status, body = await caller.call("GET", "/v1/documents", params={"direction": "RECEIVED"})
    assert status == 200, body
    return body["data"]["items"]  # type: ignore[no-any-return]


def invalid_invoice() -> bytes:
    """The example invoice with a payable amount that does not add up (EN 16931 BR-CO-16)."""
    data = (EXAMPLES / "invoice.xml").read_bytes()
    broken = data.replace(
        b'<cbc:PayableAmount currencyID="EUR">480.00<', b'<cbc:PayableAmount currencyID="EUR">481.00<'
    )
    assert broken != data
    return broken.replace(b"NS-2026-1001", b"NS-2026-BAD")


async def test_an_invalid_invoice_is_refused_at_submission_with_the_rule_ids(pair: Pair) -> None:
    status, body = await pair.norway.call(
        "POST", "/v1/documents", data=invalid_invoice(), headers={"Content-Type": "application/xml"}
    )
    assert status == 400 and body["error"]["code"] == "validation_error"
    rules = {e["rule_id"] for e in body["error"]["details"]["validation"]["errors"]}
    assert "BR-CO-16" in rules


async def test_a_rejected_invoice_gets_a_negative_mls_that_the_sender_shows(pair: Pair) -> None:
    status, _ = await pair.norway.call("PATCH", f"/v1/companies/{pair.norway_id}", json={"outbound_validation": "warn"})
    assert status == 200
    status, _ = await pair.finland.call(
        "PATCH", f"/v1/companies/{pair.finland_id}", json={"inbound_validation": "reject"}
    )
    assert status == 200
    sent = await send(pair.norway, invalid_invoice())
    assert "BR-CO-16" in {w["rule_id"] for w in (await document(pair.norway, sent["id"]))["warnings"]}

    async def rejected() -> dict[str, Any] | None:
        doc = await document(pair.norway, sent["id"])
        return doc if doc["status"] == "rejected" else None

    doc = await eventually(rejected)
    assert doc["mls"]["code"] == "RE" and "BR-CO-16" in doc["mls"]["reason"]
    status, audit = await pair.norway.call("GET", f"/v1/documents/{sent['id']}/audit")
    assert any(line["state"] == "rejected" for line in audit["data"])
    assert await mailbox(pair.finland) == []  # refused documents never reach the mailbox
    # The MLS itself: from B's SPID to A's, about the envelope that was rejected.
    mls = await pair.a.pool.fetchrow("SELECT * FROM inbound_messages WHERE kind = 'mls'")
    assert (mls["sender_value"], mls["receiver_value"]) == ("0242:000002", "0242:000001")
    assert mls["mls_code"] is None and mls["mls_outbound_id"] is None  # no MLS answers an MLS


async def test_always_send_gets_a_positive_mls_and_a_valid_invoice_reaches_the_mailbox(pair: Pair) -> None:
    sent = await send(pair.norway, (EXAMPLES / "invoice.xml").read_bytes(), mls_type="ALWAYS_SEND")

    async def accepted() -> dict[str, Any] | None:
        doc = await document(pair.norway, sent["id"])
        return doc if doc["status"] == "accepted" else None

    doc = await eventually(accepted)
    assert doc["mls"]["code"] == "AB"  # stored in the mailbox, not validated by the receiver's policy
    assert [m["document_type"] for m in await mailbox(pair.finland)] == [sent["document_type"]]


async def test_failure_only_sends_no_mls_for_an_accepted_document(pair: Pair) -> None:
    sent = await send(pair.norway, (EXAMPLES / "invoice.xml").read_bytes())
    job = int(sent["id"][1:])
    assert await wait_for_state(pair.a.pool, job, {"delivered"}) == "delivered"
    await eventually(mailbox_has_one(pair.finland))
    await asyncio.sleep(0.5)
    assert await pair.b.pool.fetchval("SELECT count(*) FROM outbound_messages WHERE kind = 'mls'") == 0


def mailbox_has_one(caller: Caller) -> Callable[[], Awaitable[list[dict[str, Any]] | None]]:
    async def check() -> list[dict[str, Any]] | None:
        items = await mailbox(caller)
        return items if items else None

    return check


async def test_no_mls_is_sent_in_answer_to_an_mls_even_when_it_asks_for_one(pair: Pair) -> None:
    # An MLS from A's SPID to B's whose envelope (wrongly) asks for ALWAYS_SEND.
    mls = build_mls(
        sender_spid="0242:000001", receiver_spid="0242:000002", referenced_instance=str(uuid.uuid4()), code="AP"
    )
    derived = derive_submission(
        mls, sender="0242:000001", receiver="0242:000002", document_type=str(smp.MLS.document_type),
        process=str(smp.MLS.process), country_c1="NO", mls_type="ALWAYS_SEND",
    )  # fmt: skip
    job = await submit_document(pair.a.pool, derived, retry_window=60)
    assert await wait_for_state(pair.a.pool, job, {"delivered", "failed"}) == "delivered"

    async def processed() -> bool:
        return bool(await pair.b.pool.fetchval("SELECT processing = 'done' FROM inbound_messages WHERE kind = 'mls'"))

    await eventually(processed)
    assert await pair.b.pool.fetchval("SELECT count(*) FROM outbound_messages WHERE kind = 'mls'") == 0


async def test_an_invoice_response_round_trips_and_is_linked_to_the_invoice(pair: Pair) -> None:
    sent = await send(pair.norway, (EXAMPLES / "invoice.xml").read_bytes())
    received = (await eventually(mailbox_has_one(pair.finland)))[0]
    status, body = await pair.finland.call(
        "POST", f"/v1/documents/{received['id']}/response",
        json={"type": "invoice_response", "code": "RE", "reasons": [{"code": "REF", "text": "unknown order"}]},
    )  # fmt: skip
    assert status == 202, body
    answer = body["data"]
    assert "invoice_response:3" in answer["document_type"]

    async def answered() -> dict[str, Any] | None:
        doc = await document(pair.norway, sent["id"])
        return doc if doc["response"] else None

    doc = await eventually(answered)
    assert doc["response"]["code"] == "RE"
    response_entry = await document(pair.norway, doc["response"]["document"])
    assert response_entry["kind"] == "response" and response_entry["answers"] == sent["id"]
    assert (await document(pair.finland, received["id"]))["status"] == "answered"
    status, body = await pair.finland.call(
        "POST", f"/v1/documents/{received['id']}/response", json={"type": "invoice_response", "code": "AP"}
    )
    assert (status, body["error"]["code"]) == (409, "already_answered")


async def test_an_order_response_with_changed_lines_round_trips_and_is_linked_to_the_order(pair: Pair) -> None:
    sent = await send(pair.finland, (EXAMPLES / "order.xml").read_bytes())
    received = (await eventually(mailbox_has_one(pair.norway)))[0]
    status, body = await pair.norway.call(
        "POST", f"/v1/documents/{received['id']}/response",
        json={"type": "order_response", "code": "CA",
              "lines": [{"line_id": "1", "status": "3", "quantity": 2, "note": "two left in stock"}]},
    )  # fmt: skip
    assert status == 202, body

    async def answered() -> dict[str, Any] | None:
        doc = await document(pair.finland, sent["id"])
        return doc if doc["response"] else None

    doc = await eventually(answered)
    assert doc["response"]["code"] == "CA"
    content = await pair.finland.call("GET", f"/v1/documents/{doc['response']['document']}/document")
    order_response = etree.fromstring(content[1])
    assert order_response.findtext(".//{*}OrderReference/{*}ID") == "OSTO-5521"
    assert order_response.findtext(".//{*}LineStatusCode") == "3"


async def test_a_response_to_a_missing_or_foreign_document_is_not_found(pair: Pair) -> None:
    await send(pair.norway, (EXAMPLES / "invoice.xml").read_bytes())
    received = (await eventually(mailbox_has_one(pair.finland)))[0]
    for caller, doc_id in ((pair.finland, "r999999"), (pair.finland, "s1"), (pair.norway, received["id"])):
        status, body = await caller.call(
            "POST", f"/v1/documents/{doc_id}/response", json={"type": "invoice_response", "code": "AP"}
        )
        assert (status, body["error"]["code"]) == (404, "not_found"), doc_id


async def test_a_response_with_a_code_outside_the_code_list_is_refused(pair: Pair) -> None:
    await send(pair.norway, (EXAMPLES / "invoice.xml").read_bytes())
    received = (await eventually(mailbox_has_one(pair.finland)))[0]
    status, body = await pair.finland.call(
        "POST", f"/v1/documents/{received['id']}/response", json={"type": "invoice_response", "code": "XX"}
    )
    assert (status, body["error"]["details"]["field"]) == (400, "code")
    status, body = await pair.finland.call(
        "POST", f"/v1/documents/{received['id']}/response", json={"type": "order_response", "code": "AP"}
    )
    assert (status, body["error"]["code"]) == (409, "wrong_document")


def _no_country(sbd: bytes) -> bytes:
    root = etree.fromstring(sbd)
    for scope in root.iter(f"{{{SBDH_NS}}}Scope"):
        if scope.findtext(f"{{{SBDH_NS}}}Type") == "COUNTRY_C1":
            scope.getparent().remove(scope)  # type: ignore[union-attr]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _counts(report: bytes) -> dict[tuple[str, ...], tuple[int, int]]:
    root = etree.fromstring(report)
    out = {}
    for subtotal in root.iter(f"{{{TSR_NS}}}Subtotal"):
        keys = tuple(k.text or "" for k in subtotal.iter(f"{{{TSR_NS}}}Key"))
        out[(subtotal.get("type") or "", *keys)] = (
            int(subtotal.findtext(f"{{{TSR_NS}}}Incoming") or -1),
            int(subtotal.findtext(f"{{{TSR_NS}}}Outgoing") or -1),
        )
    return out


async def test_tsr_and_eusr_count_exactly_what_was_exchanged_and_pass_the_official_rules(pair: Pair) -> None:
    invoice = (EXAMPLES / "invoice.xml").read_bytes()
    status, _ = await pair.norway.call("PATCH", f"/v1/companies/{pair.norway_id}", json={"duplicate_check": False})
    assert status == 200  # the same invoice twice, on purpose
    for _ in range(2):
        await send(pair.norway, invoice)
    await send(pair.finland, (EXAMPLES / "order.xml").read_bytes())
    # One envelope without COUNTRY_C1: accepted (non-compliant), reported with country ZZ.
    # Our own sender never builds one, so it goes out through the AS4 layer, as another
    # access point would send it.
    derived = derive_submission(invoice)
    await send_as_peer(pair.a, pair.b, derived, _no_country(derived.sbd))

    async def all_in() -> bool:
        a_in = await pair.a.pool.fetchval("SELECT count(*) FROM exchanges WHERE direction = 'in'")
        b_in = await pair.b.pool.fetchval("SELECT count(*) FROM exchanges WHERE direction = 'in'")
        # B's own send is recorded when its receipt comes back, which may be after A stored it
        b_out = await pair.b.pool.fetchval("SELECT count(*) FROM exchanges WHERE direction = 'out'")
        return bool(a_in == 1 and b_in == 3 and b_out == 1)

    await eventually(all_in)
    month = datetime.now(UTC).strftime("%Y-%m")
    assert pair.b.services.reports is not None and pair.a.services.reports is not None
    tsr_b = await pair.b.services.reports.build("TSR", month)
    assert tsr_b.result.valid, tsr_b.result.as_json()["errors"]
    invoice_type = str(smp.profile_services("INVOICE_AND_CREDIT_NOTE")[0].document_type.value)
    order_type = str(smp.profile_services("ORDER")[0].document_type.value)
    billing = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
    counts = _counts(tsr_b.content)
    assert counts[("PerTP", "peppol-transport-as4-v2_0")] == (3, 1)
    assert counts[("PerSP-DT-PR", "POP000001", invoice_type, billing)] == (3, 0)
    assert counts[("PerSP-DT-PR", "POP000001", order_type, "urn:fdc:peppol.eu:poacc:bis:ordering:3")] == (0, 1)
    assert counts[("PerSP-DT-PR-CC", "POP000001", invoice_type, billing, "NO", "FI")] == (2, 0)
    assert counts[("PerSP-DT-PR-CC", "POP000001", invoice_type, billing, "ZZ", "FI")] == (1, 0)

    eusr_a = await pair.a.services.reports.build("EUSR", month)
    assert eusr_a.result.valid, eusr_a.result.as_json()["errors"]
    full = etree.fromstring(eusr_a.content).find(f"{{{EUSR_NS}}}FullSet")
    assert full is not None
    assert [int(full.findtext(f"{{{EUSR_NS}}}{n}") or -1) for n in
            ("SendingEndUsers", "ReceivingEndUsers", "SendingOrReceivingEndUsers")] == [1, 1, 1]  # fmt: skip
    # each counted exchange names the identifier its end user used, for unification
    lo = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    used = await duties_queries.month_end_users(pair.a.pool, lo, lo + timedelta(days=32))
    assert {(e.direction, (e.participant or "").partition("::")[2][:5]) for e in used} == {
        ("out", "0192:"),
        ("in", "0192:"),
    }

    # The report travels like any document, to the reporting participant (here on B), and is
    # not counted itself.
    job = await pair.a.services.reports.send(await pair.a.services.reports.build("TSR", month))
    assert await wait_for_state(pair.a.pool, job, {"delivered", "failed"}) == "delivered"
    assert await pair.a.pool.fetchval("SELECT count(*) FROM exchanges WHERE direction = 'out'") == 2  # invoices
    stored = await pair.b.pool.fetchval("SELECT count(*) FROM inbound_messages WHERE kind = 'report'")
    assert stored == 1

    status, body = await pair.operator_b.call("POST", "/v1/operator/reports", json={"kind": "EUSR", "month": month})
    assert status == 201 and body["data"]["status"] == "built" and body["data"]["valid"]
    status, body = await pair.operator_b.call("GET", "/v1/operator/reports")
    assert status == 200 and [r["kind"] for r in body["data"]] == ["EUSR", "TSR"]
    status, body = await pair.finland.call("GET", "/v1/operator/reports")
    assert status == 403


async def test_the_monthly_schedule_sends_each_report_once_and_again_after_a_failed_delivery(pair: Pair) -> None:
    reports = pair.a.services.reports
    assert reports is not None
    now = datetime.now(UTC).date()
    next_month = (now.replace(day=28) + timedelta(days=4)).replace(day=1)  # its previous month is this one
    assert await reports.run_due(next_month) == [f"TSR {now:%Y-%m} sent", f"EUSR {now:%Y-%m} sent"]
    for job in await pair.a.pool.fetch("SELECT outbound_id FROM reports"):
        assert await wait_for_state(pair.a.pool, job["outbound_id"], {"delivered", "failed"}) == "delivered"
    assert await reports.run_due(next_month) == []  # sent: nothing to do

    tsr = await pair.a.pool.fetchval("SELECT outbound_id FROM reports WHERE kind = 'TSR'")
    await pair.a.pool.execute(
        "UPDATE outbound_messages SET state = 'failed', last_error = 'gave up' WHERE id = $1", tsr
    )
    assert await reports.run_due(next_month) == [f"TSR {now:%Y-%m} sent"]
    event = await pair.a.pool.fetchrow("SELECT company_id, payload FROM events WHERE kind = 'report.failed'")
    assert event["company_id"] is None and "gave up" in event["payload"]
    assert await pair.a.pool.fetchval("SELECT outbound_id FROM reports WHERE kind = 'TSR'") != tsr


async def test_a_document_without_the_senders_country_takes_the_companys_registered_one(pair: Pair) -> None:
    # A BIS Invoice Response has no postal address; the ERP need not say the country either.
    sent = await send(pair.finland, (EXAMPLES / "invoice-response.xml").read_bytes())
    job = int(sent["id"][1:])
    assert await pair.b.pool.fetchval("SELECT country_c1 FROM outbound_messages WHERE id = $1", job) == "FI"
    assert await wait_for_state(pair.b.pool, job, {"delivered", "failed"}) == "delivered"
