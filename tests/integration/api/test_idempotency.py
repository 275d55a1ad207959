"""Nothing twice: requests that create something, retried with one Idempotency-Key (also
concurrently, also after a rolled-back try), and documents resubmitted without a key."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.security import queries as security_queries
from gateway.security.credentials import create_operator
from tests.support.api import Caller, token
from tests.support.gateways import InProcessGateway, in_process_gateway, new_database
from tests.support.paths import EXAMPLES

INVOICE = (EXAMPLES / "invoice.xml").read_bytes()
XML = {"Content-Type": "application/xml"}


@dataclass
class Sender:
    gw: InProcessGateway
    operator: Caller
    company: Caller
    company_id: uuid.UUID


@dataclass
class Answer:
    status: int
    body: Any
    replayed: bool


async def call(caller: Caller, method: str, path: str, key: str | None = None, **kw: Any) -> Answer:
    headers = {"Authorization": f"Bearer {caller.token}", **kw.pop("headers", {})}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with caller.session.request(method, caller.base + path, headers=headers, **kw) as r:
        return Answer(r.status, await r.json(), r.headers.get("Idempotent-Replayed") == "true")


@pytest.fixture
async def sender(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[Sender]:
    """A verified company that sends as 0192:991825827; no workers, so every job stays queued."""
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as gw,
        aiohttp.ClientSession() as session,
    ):
        operator_id, operator_key = await create_operator(gw.pool, "Operator One")
        operator = await token(session, gw.url, str(operator_id), operator_key)
        status, body = await operator.call(
            "POST", "/v1/companies", json={"name": "Nordic Supplies AS", "country": "NO", "business_id": "991825827"}
        )
        assert status == 201, body
        company_id = body["data"]["id"]
        assert (await operator.call("POST", f"/v1/companies/{company_id}/verify"))[0] == 200
        company = await token(session, gw.url, company_id, body["data"]["api_key"])
        assert (await company.call("POST", "/v1/company/profiles", json={"profiles": ["ORDER"]}))[0] == 201
        yield Sender(gw, operator, company, uuid.UUID(company_id))


async def jobs(sender: Sender) -> int:
    return int(
        await sender.gw.pool.fetchval("SELECT count(*) FROM outbound_messages WHERE company_id = $1", sender.company_id)
    )


def another_invoice(number: str) -> bytes:
    return INVOICE.replace(b"<cbc:ID>NS-2026-1001</cbc:ID>", f"<cbc:ID>{number}</cbc:ID>".encode(), 1)


@pytest.mark.parametrize("retries", [2, 16])
async def test_concurrent_retries_with_one_key_queue_one_job_and_get_one_answer(sender: Sender, retries: int) -> None:
    answers = await asyncio.gather(
        *(
            call(sender.company, "POST", "/v1/documents", "erp-batch-17", data=INVOICE, headers=XML)
            for _ in range(retries)
        )
    )
    assert {a.status for a in answers} == {202}
    assert len({json.dumps(a.body, sort_keys=True) for a in answers}) == 1  # the same answer, meta and all
    assert sum(not a.replayed for a in answers) == 1
    assert await jobs(sender) == 1
    again = await call(sender.company, "POST", "/v1/documents", "erp-batch-17", data=INVOICE, headers=XML)
    assert (again.status, again.body, again.replayed) == (202, answers[0].body, True)


async def test_a_key_reused_for_another_request_is_refused(sender: Sender) -> None:
    first = await call(sender.company, "POST", "/v1/documents", "k-1", data=INVOICE, headers=XML)
    assert first.status == 202
    other = await call(
        sender.company, "POST", "/v1/documents", "k-1", data=another_invoice("NS-2026-1002"), headers=XML
    )
    assert (other.status, other.body["error"]["code"]) == (409, "idempotency_key_reused")
    params = await call(
        sender.company, "POST", "/v1/documents", "k-1", data=INVOICE, headers=XML, params={"mls_type": "ALWAYS_SEND"}
    )
    assert (params.status, params.body["error"]["code"]) == (409, "idempotency_key_reused")
    assert await jobs(sender) == 1


async def test_a_refused_request_keeps_no_key(sender: Sender) -> None:
    """The key is claimed in the transaction that is rolled back when the request fails after it."""
    refused = await call(
        sender.company, "POST", "/v1/documents", "k-2", data=INVOICE, headers=XML, params={"sender": "0192:745707327"}
    )
    assert (refused.status, refused.body["error"]["details"]["field"]) == (400, "sender")
    assert await sender.gw.pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'k-2'") == 0
    assert await jobs(sender) == 0


async def test_a_claim_rolled_back_leaves_no_key_and_lets_the_waiting_retry_run(sender: Sender) -> None:
    owner = security_queries.IdempotencyOwner(company_id=sender.company_id)
    pool = sender.gw.pool
    async with pool.acquire() as first, pool.acquire() as second:
        crashed = first.transaction()
        await crashed.start()
        assert await security_queries.claim_idempotency_key(first, owner, "k-3", b"a" * 32, 86400)

        async def retry(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                return await security_queries.claim_idempotency_key(conn, owner, "k-3", b"a" * 32, 86400)

        waiting = asyncio.create_task(retry(second))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the key's unique index
        await crashed.rollback()
        assert await asyncio.wait_for(waiting, 5) is True
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'k-3'") == 1


async def test_an_expired_key_is_a_new_one(sender: Sender) -> None:
    hook = {"destination": "https://erp.example/hook"}
    first = await call(sender.company, "POST", "/v1/company/notifications", "hook-1", json=hook)
    await sender.gw.pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    second = await call(sender.company, "POST", "/v1/company/notifications", "hook-1", json=hook)
    assert (first.status, second.status, second.replayed) == (201, 201, False)
    assert first.body["data"]["id"] != second.body["data"]["id"]


async def test_a_resubmitted_document_is_refused_with_the_earlier_id(sender: Sender) -> None:
    first = await call(sender.company, "POST", "/v1/documents", data=INVOICE, headers=XML)
    assert first.status == 202
    again = await call(sender.company, "POST", "/v1/documents", data=INVOICE, headers=XML)
    assert (again.status, again.body["error"]["code"]) == (409, "duplicate_document")
    assert again.body["error"]["details"]["document_id"] == first.body["data"]["id"]
    other = await call(sender.company, "POST", "/v1/documents", data=another_invoice("NS-2026-1003"), headers=XML)
    assert other.status == 202  # another ID is another document
    assert await jobs(sender) == 2


async def test_a_resubmission_after_a_failed_job_is_sent(sender: Sender) -> None:
    first = await call(sender.company, "POST", "/v1/documents", data=INVOICE, headers=XML)
    await sender.gw.pool.execute(
        "UPDATE outbound_messages SET state = 'failed' WHERE id = $1", int(first.body["data"]["id"][1:])
    )
    again = await call(sender.company, "POST", "/v1/documents", data=INVOICE, headers=XML)
    assert again.status == 202


async def test_concurrent_identical_submissions_queue_one_job(sender: Sender) -> None:
    answers = await asyncio.gather(
        *(call(sender.company, "POST", "/v1/documents", data=INVOICE, headers=XML) for _ in range(8))
    )
    assert sorted(a.status for a in answers) == [202] + [409] * 7
    assert await jobs(sender) == 1


async def test_the_company_turns_the_duplicate_check_off_for_an_intentional_resend(sender: Sender) -> None:
    assert (await call(sender.company, "POST", "/v1/documents", data=INVOICE, headers=XML)).status == 202
    path = f"/v1/companies/{sender.company_id}"
    changed = await call(sender.company, "PATCH", path, json={"duplicate_check": False})
    assert (changed.status, changed.body["data"]["duplicate_check"]) == (200, False)
    assert (await call(sender.company, "POST", "/v1/documents", data=INVOICE, headers=XML)).status == 202
    assert await jobs(sender) == 2
    bad = await call(sender.company, "PATCH", path, json={"duplicate_check": "no"})
    assert (bad.status, bad.body["error"]["details"]["field"]) == (400, "duplicate_check")


async def test_webhooks_are_created_once_per_key_and_the_secret_is_not_kept(sender: Sender) -> None:
    hook = {"destination": "https://erp.example/hook", "events": ["document.received"]}
    first, second = await asyncio.gather(
        *(call(sender.company, "POST", "/v1/company/notifications", "hook-2", json=hook) for _ in range(2))
    )
    assert first.status == second.status == 201
    assert first.body["data"]["id"] == second.body["data"]["id"]
    live, replay = (first, second) if second.replayed else (second, first)
    assert live.body["data"]["secret"].startswith("whsec_") and replay.body["data"]["secret"] is None
    count = await sender.gw.pool.fetchval("SELECT count(*) FROM webhooks WHERE company_id = $1", sender.company_id)
    assert count == 1
    reordered = {"events": ["document.received"], "destination": "https://erp.example/hook"}
    assert (await call(sender.company, "POST", "/v1/company/notifications", "hook-2", json=reordered)).replayed


async def test_profiles_are_registered_once_per_key(sender: Sender) -> None:
    wanted = {"profiles": ["INVOICE_AND_CREDIT_NOTE"]}
    answers = await asyncio.gather(
        *(call(sender.company, "POST", "/v1/company/profiles", "profiles-1", json=wanted) for _ in range(4))
    )
    assert {a.status for a in answers} == {201}
    assert len({json.dumps(a.body) for a in answers}) == 1
    count = await sender.gw.pool.fetchval(
        "SELECT count(*) FROM company_profiles WHERE company_id = $1 AND profile = 'INVOICE_AND_CREDIT_NOTE'",
        sender.company_id,
    )
    assert count == 1
    other = await call(sender.company, "POST", "/v1/company/profiles", "profiles-1", json={"profiles": ["ORDER"]})
    assert (other.status, other.body["error"]["code"]) == (409, "idempotency_key_reused")


async def test_companies_and_api_keys_are_created_once_per_key(sender: Sender) -> None:
    company = {"name": "Second AS", "country": "NO", "business_id": "745707327"}
    made = [await call(sender.operator, "POST", "/v1/companies", "company-1", json=company) for _ in range(2)]
    assert [a.status for a in made] == [201, 201] and made[1].replayed
    assert made[0].body["data"]["id"] == made[1].body["data"]["id"] and made[1].body["data"]["api_key"] is None
    keys = [await call(sender.company, "POST", "/v1/api_keys", "key-1", json={"label": "erp"}) for _ in range(2)]
    assert keys[0].body["data"]["id"] == keys[1].body["data"]["id"] and keys[1].replayed
    # the key is the caller's: another company's same key is its own
    assert (await call(sender.company, "POST", "/v1/api_keys", "company-1", json={"label": "x"})).status == 201


async def test_the_answer_to_a_submission_is_the_document_as_read_back(sender: Sender) -> None:
    sent = await call(sender.company, "POST", "/v1/documents", data=another_invoice("NS-2026-2001"), headers=XML)
    assert sent.status == 202
    read = await call(sender.company, "GET", f"/v1/documents/{sent.body['data']['id']}")
    assert read.status == 200
    assert sent.body["data"] == read.body["data"]


async def test_a_company_sends_only_as_its_own_participants(sender: Sender) -> None:
    foreign = another_invoice("NS-2026-2002").replace(
        b'<cbc:EndpointID schemeID="0192">991825827</cbc:EndpointID>',
        b'<cbc:EndpointID schemeID="0192">987654325</cbc:EndpointID>',
        1,
    )
    refused = await call(sender.company, "POST", "/v1/documents", data=foreign, headers=XML)
    assert (refused.status, refused.body["error"]["details"]["field"]) == (400, "sender")
    # a company with more participants than the sending check reads at once is asked about the one
    await sender.gw.pool.executemany(
        "INSERT INTO participants (scheme, value, display, company_id) VALUES ('iso6523-actorid-upis', $1, $1, $2)",
        [(f"0192:9{n:08d}", sender.company_id) for n in range(40)],
    )
    refused = await call(sender.company, "POST", "/v1/documents", data=foreign, headers=XML)
    assert (refused.status, refused.body["error"]["details"]["field"]) == (400, "sender")
    sent = await call(sender.company, "POST", "/v1/documents", data=another_invoice("NS-2026-2003"), headers=XML)
    assert sent.status == 202
    assert await jobs(sender) == 1
