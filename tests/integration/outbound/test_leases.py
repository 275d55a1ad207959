"""Short leases renewed while a delivery runs, fenced by the claim's token: a long delivery stays
with its worker, a claim whose worker stopped renewing it is taken again within a lease and the
resend (same AS4 MessageId) is answered as a duplicate, and a worker that lost its claim cannot
overwrite the newer attempt's outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.outbound import queries as outbound_queries
from gateway.outbound.states import OutboundState
from gateway.outbound.submission import derive_submission, submit_document
from gateway.outbound.worker import OutboundWorker
from tests.support.gateways import InProcessGateway, free_port, in_process_gateway, new_database, register_company
from tests.support.paths import EXAMPLES
from tests.support.proxy import HoldingProxy

FINLAND = "0216:003720774740"
LEASE = 0.6


@dataclass
class Setup:
    a: InProcessGateway
    b: InProcessGateway
    proxy: HoldingProxy
    job: int
    worker: Callable[[], OutboundWorker]

    async def stored(self) -> int:
        return int(await self.b.pool.fetchval("SELECT count(*) FROM inbound_messages"))

    async def status(self) -> outbound_queries.OutboundStatus:
        status = await outbound_queries.outbound_status(self.a.pool, self.job)
        assert status is not None
        return status


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
async def setup(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[Setup]:
    port = free_port()
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as a,
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, workers=False) as b,
        aiohttp.ClientSession() as session,
    ):
        await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
        proxy = HoldingProxy(b.as4_url, session)
        runner = await proxy.serve(port)
        derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
        job = await submit_document(
            a.pool, derived, retry_window=3600,
            endpoint_url=f"http://127.0.0.1:{port}/as4", endpoint_cert=dev_pki.access_points["ap2"].cert,
        )  # fmt: skip

        def worker() -> OutboundWorker:
            return OutboundWorker(a.pool, a.runtime.identity, a.runtime.trust, None, lease_seconds=LEASE)

        try:
            yield Setup(a, b, proxy, job, worker)
        finally:
            proxy.open_all()
            await runner.cleanup()


async def test_a_long_delivery_stays_claimed_by_its_worker_while_it_renews_the_lease(setup: Setup) -> None:
    setup.proxy.hold = 1
    delivering = asyncio.create_task(setup.worker().deliver_now(setup.job))
    await until(lambda: _equals(setup.stored(), 1))
    await asyncio.sleep(4 * LEASE)  # the delivery outlives its lease several times over
    assert not await setup.worker().deliver_now(setup.job)  # a second worker finds it claimed
    assert await outbound_queries.claim_outbound(setup.a.pool, LEASE, job_id=setup.job) is None
    setup.proxy.open_all()
    assert await delivering
    status = await setup.status()
    assert status.state == OutboundState.DELIVERED and status.attempts == 1


async def test_a_claim_whose_worker_stopped_renewing_is_taken_again_and_delivered_once(setup: Setup) -> None:
    setup.proxy.hold = 1
    dead = setup.worker()
    claimed = await outbound_queries.claim_outbound(setup.a.pool, LEASE, job_id=setup.job)
    assert claimed is not None
    async with aiohttp.ClientSession() as session:
        dead._session = session
        # Delivering without the heartbeat: the process died after the receiver stored the message.
        stalled = asyncio.create_task(dead._traced(claimed))
        try:
            await until(lambda: _equals(setup.stored(), 1))
            died = time.monotonic()
            other = setup.worker()
            await until(lambda: other.deliver_now(setup.job))
            taken_after = time.monotonic() - died
        finally:
            stalled.cancel()
            await asyncio.wait([stalled])
    print(f"\nre-claimed {taken_after:.2f} s after the worker stopped renewing a {LEASE} s lease")
    assert taken_after < 10 * LEASE
    status = await setup.status()
    assert status.state == OutboundState.DELIVERED and status.attempts == 2
    assert "duplicate" in status.audit[-1][2] or "receipt" in status.audit[-1][2]
    message_ids = await setup.b.pool.fetch("SELECT as4_message_id FROM inbound_messages")
    assert [r["as4_message_id"] for r in message_ids] == [claimed.as4_message_id]  # the same MessageId, once


async def test_the_outcome_of_a_worker_that_lost_its_claim_is_fenced_off(setup: Setup) -> None:
    setup.proxy.hold = 2
    stale = OutboundWorker(
        setup.a.pool, setup.a.runtime.identity, setup.a.runtime.trust, None, lease_seconds=30
    )  # renews every 10 s: too late
    first = asyncio.create_task(stale.deliver_now(setup.job))
    await until(lambda: _equals(setup.stored(), 1))
    # Its lease runs out (a stalled process); another worker claims the job and sends it again.
    await setup.a.pool.execute(
        "UPDATE outbound_messages SET locked_until = now() - interval '1 second' WHERE id = $1", setup.job
    )
    newer = setup.worker()
    second = asyncio.create_task(newer.deliver_now(setup.job))
    await until(lambda: _equals(_length(setup.proxy.gates), 2))
    setup.proxy.gates[0].set()  # the stale worker gets its receipt first
    assert await first
    status = await setup.status()
    assert status.state == OutboundState.SENDING and status.attempts == 2  # the newer attempt is untouched
    assert [s for _, s, _ in status.audit].count("delivered") == 0
    setup.proxy.gates[1].set()
    assert await second
    status = await setup.status()
    assert status.state == OutboundState.DELIVERED and status.attempts == 2
    assert [s for _, s, _ in status.audit].count("delivered") == 1
    assert await setup.stored() == 1
    events = await setup.a.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'document.delivered'")
    assert events == 1


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _length(items: list[asyncio.Event]) -> int:
    return len(items)
