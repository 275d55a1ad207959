"""A running worker records an outcome and claims its next job in one statement: every job is
still delivered once, with one attempt, and a job claimed that way but not started when the
worker stops goes back to the queue at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.outbound import queries as outbound_queries
from gateway.outbound.states import OutboundState
from gateway.outbound.submission import derive_submission, submit_document
from gateway.outbound.worker import OutboundWorker
from tests.support.gateways import InProcessGateway, in_process_gateway, new_database, register_company
from tests.support.paths import EXAMPLES

FINLAND = "0216:003720774740"


@dataclass
class Pair:
    a: InProcessGateway
    b: InProcessGateway
    jobs: list[int]

    def worker(self) -> OutboundWorker:
        return OutboundWorker(self.a.pool, self.a.runtime.identity, self.a.runtime.trust, None, poll_interval=0.1)

    async def states(self) -> list[str]:
        rows = await self.a.pool.fetch("SELECT state FROM outbound_messages ORDER BY id")
        return [r["state"] for r in rows]


@pytest.fixture
async def pair(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[Pair]:
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as a,
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, workers=False) as b,
    ):
        await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
        derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
        jobs = [
            await submit_document(
                a.pool, derived, retry_window=3600, endpoint_url=b.as4_url, endpoint_cert=dev_pki.access_points["ap2"].cert
            )
            for _ in range(6)
        ]  # fmt: skip
        yield Pair(a, b, jobs)


async def test_every_job_is_delivered_once_with_one_attempt(pair: Pair) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(pair.worker().run(stop, concurrency=2))
    deadline = time.monotonic() + 30
    while await pair.states() != ["delivered"] * 6:
        assert time.monotonic() < deadline, await pair.states()
        await asyncio.sleep(0.05)
    stop.set()
    await running
    for job in pair.jobs:
        status = await outbound_queries.outbound_status(pair.a.pool, job)
        assert status is not None and status.attempts == 1
        assert [state for _, state, _ in status.audit] == ["queued", "sending", "delivered"]
    stored = await pair.b.pool.fetchval("SELECT count(DISTINCT as4_message_id) FROM inbound_messages")
    assert stored == await pair.b.pool.fetchval("SELECT count(*) FROM inbound_messages") == 6


async def test_a_job_claimed_with_an_outcome_goes_back_when_the_worker_stops(pair: Pair) -> None:
    worker = pair.worker()
    worker._chained = True  # as while run() works
    async with aiohttp.ClientSession() as session:
        worker._session = session
        assert await worker.run_once()  # delivers one job, and claims the next with its outcome
        worker._session = None
    assert len(worker._next) == 1
    following = worker._next[0]
    assert await pair.states() == ["delivered", "sending"] + ["queued"] * 4
    stop = asyncio.Event()
    stop.set()
    await worker.run(stop)  # stops at once: the job claimed but not started is given back
    status = await outbound_queries.outbound_status(pair.a.pool, following.id)
    assert status is not None and status.state == OutboundState.RETRYING
    assert status.audit[-1][2] == "released: the gateway stopped"
    assert await pair.a.pool.fetchval("SELECT claim_token FROM outbound_messages WHERE id = $1", following.id) is None
    other = pair.worker()
    assert await other.deliver_now(following.id)
    status = await outbound_queries.outbound_status(pair.a.pool, following.id)
    assert status is not None and status.state == OutboundState.DELIVERED
