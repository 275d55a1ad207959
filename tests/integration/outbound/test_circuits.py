"""The circuit breaker and concurrency limit per receiving endpoint: the rules on a fake clock
against the shared state in PostgreSQL, two guards as two replicas of the gateway, then a real
worker against an endpoint that refuses connections."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.outbound import queries as outbound_queries
from gateway.outbound.circuits import EndpointGuard
from gateway.outbound.states import CircuitState
from gateway.outbound.submission import derive_submission, submit_document
from gateway.outbound.worker import OutboundWorker
from gateway.security.credentials import create_operator
from tests.support.api import token
from tests.support.gateways import in_process_gateway, new_database
from tests.support.paths import EXAMPLES

URL = "https://ap.example/as4"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def state(pool: asyncpg.Pool, url: str = URL) -> CircuitState:
    view = await outbound_queries.read_circuit(pool, url)
    return CircuitState.CLOSED if view is None else view.state


async def failing(guard: EndpointGuard, times: int) -> None:
    for _ in range(times):
        admission = await guard.admit(URL)
        assert admission.wait == 0
        await guard.finished(URL, admission, transport_failure=True)


async def test_the_circuit_opens_after_the_threshold_of_failures_in_a_row(db_pool: asyncpg.Pool) -> None:
    guard = EndpointGuard(db_pool, threshold=3, cooldown=30, clock=Clock())
    await failing(guard, 2)
    assert await state(db_pool) == "closed"
    admission = await guard.admit(URL, wait=0.01)
    assert admission.wait == 0
    change = await guard.finished(URL, admission, transport_failure=True)
    assert change is not None and change.after == "open"
    assert (await guard.admit(URL, wait=0.01)).wait == 30


async def test_a_success_resets_the_count_of_failures(db_pool: asyncpg.Pool) -> None:
    guard = EndpointGuard(db_pool, threshold=3, clock=Clock())
    await failing(guard, 2)
    admission = await guard.admit(URL, wait=0.01)
    assert not admission.clean  # it saw failures: the success is written
    await guard.finished(URL, admission, transport_failure=False)
    await failing(guard, 2)
    assert await state(db_pool) == "closed"


async def test_a_success_on_a_clean_circuit_writes_nothing(db_pool: asyncpg.Pool) -> None:
    guard = EndpointGuard(db_pool, clock=Clock())
    admission = await guard.admit(URL, wait=0.01)
    assert admission.clean
    assert await guard.finished(URL, admission, transport_failure=False) is None
    assert await db_pool.fetchval("SELECT count(*) FROM endpoint_circuits") == 0


async def test_after_the_cooldown_one_probe_goes_through_and_its_success_closes_the_circuit(
    db_pool: asyncpg.Pool,
) -> None:
    clock = Clock()
    guard = EndpointGuard(db_pool, threshold=1, cooldown=30, clock=clock)
    await failing(guard, 1)
    clock.advance(30)
    probe = await guard.admit(URL, wait=0.01)
    assert probe.wait == 0 and probe.probe  # the probe
    assert (await guard.admit(URL, wait=0.01)).wait > 0  # nobody else while it runs
    change = await guard.finished(URL, probe, transport_failure=False)
    assert change is not None and (change.before, change.after) == ("half_open", "closed")
    assert (await guard.admit(URL, wait=0.01)).wait == 0


async def test_a_failed_probe_opens_the_circuit_for_twice_as_long_up_to_the_maximum(db_pool: asyncpg.Pool) -> None:
    clock = Clock()
    guard = EndpointGuard(db_pool, threshold=1, cooldown=30, max_cooldown=100, clock=clock)
    await failing(guard, 1)
    cooldown = 30.0
    for expected in (60, 100, 100):
        clock.advance(cooldown)
        admission = await guard.admit(URL, wait=0.01)
        assert admission.wait == 0 and admission.probe
        change = await guard.finished(URL, admission, transport_failure=True)
        assert change is not None and change.after == "open" and change.cooldown == expected
        cooldown = change.cooldown


async def test_no_more_than_the_limit_of_deliveries_run_at_once_to_one_endpoint(db_pool: asyncpg.Pool) -> None:
    guard = EndpointGuard(db_pool, max_concurrent=2, clock=Clock())
    admissions = [await guard.admit(URL, wait=0.01) for _ in range(3)]
    assert [a.wait for a in admissions] == [0, 0, 0.5]
    assert admissions[2].reason == "endpoint at its concurrency limit"
    assert (await guard.admit("https://other.example/as4", wait=0.01)).wait == 0
    await guard.finished(URL, admissions[0], transport_failure=False)
    assert (await guard.admit(URL, wait=0.01)).wait == 0


# -- two replicas of the gateway on one database -----------------------------------------------------


async def test_failures_from_two_replicas_add_up_to_one_threshold(db_pool: asyncpg.Pool) -> None:
    clock = Clock()
    one, two = (EndpointGuard(db_pool, threshold=4, cooldown=30, clock=clock) for _ in range(2))
    await failing(one, 2)
    await failing(two, 1)
    assert await state(db_pool) == "closed"
    admission = await one.admit(URL, wait=0.01)
    change = await one.finished(URL, admission, transport_failure=True)
    assert change is not None and change.after == "open"
    assert (await two.admit(URL, wait=0.01)).wait == 30  # the other replica sees it open


async def test_a_clean_circuit_is_read_once_a_while_and_another_replicas_failures_are_seen_after_it(
    db_pool: asyncpg.Pool,
) -> None:
    clock = Clock()
    one = EndpointGuard(db_pool, threshold=1, cooldown=30, clock=clock, clean_for=0.5)
    two = EndpointGuard(db_pool, threshold=1, cooldown=30, clock=clock, clean_for=0.5)
    admission = await two.admit(URL, wait=0.01)  # clean: taken as such for half a second
    await two.finished(URL, admission, transport_failure=False)
    await failing(one, 1)  # the other replica opens the circuit
    assert await state(db_pool) == "open"
    admission = await two.admit(URL, wait=0.01)
    assert admission.wait == 0  # within its half second, this replica still goes
    await two.finished(URL, admission, transport_failure=False)
    await asyncio.sleep(0.6)
    assert (await two.admit(URL, wait=0.01)).wait == 30  # then it sees the circuit open


async def test_a_transport_failure_forgets_the_clean_reading_at_once(db_pool: asyncpg.Pool) -> None:
    guard = EndpointGuard(db_pool, threshold=2, cooldown=30, clock=Clock(), clean_for=60)
    await failing(guard, 2)
    assert (await guard.admit(URL, wait=0.01)).wait == 30


async def test_concurrent_failures_from_two_replicas_are_all_counted(db_pool: asyncpg.Pool) -> None:
    one, two = EndpointGuard(db_pool, threshold=100), EndpointGuard(db_pool, threshold=100)

    async def fail(guard: EndpointGuard) -> None:
        admission = await guard.admit(URL)
        await guard.finished(URL, admission, transport_failure=True)

    await asyncio.gather(*(fail(guard) for _ in range(10) for guard in (one, two)))
    view = await outbound_queries.read_circuit(db_pool, URL)
    assert view is not None and view.failures == 20


async def test_only_one_replica_gets_the_probe_and_its_success_closes_the_circuit_for_both(
    db_pool: asyncpg.Pool,
) -> None:
    clock = Clock()
    one, two = (EndpointGuard(db_pool, threshold=1, cooldown=30, clock=clock) for _ in range(2))
    await failing(one, 1)
    clock.advance(30)
    first, second = await asyncio.gather(one.admit(URL, wait=0.01), two.admit(URL, wait=0.01))
    assert sorted([first.probe, second.probe]) == [False, True]  # exactly one probes
    waiting = second if first.probe else first
    assert waiting.wait > 0 and waiting.reason == "circuit open"
    prober, probe = (one, first) if first.probe else (two, second)
    other = two if prober is one else one
    await prober.finished(URL, probe, transport_failure=False)
    assert await state(db_pool) == "closed"
    assert (await other.admit(URL, wait=0.01)).wait == 0


async def test_the_probe_of_a_replica_that_died_passes_to_another_after_its_lease(db_pool: asyncpg.Pool) -> None:
    clock = Clock()
    one = EndpointGuard(db_pool, threshold=1, cooldown=30, probe_lease=60, clock=clock)
    two = EndpointGuard(db_pool, threshold=1, cooldown=30, probe_lease=60, clock=clock)
    await failing(one, 1)
    clock.advance(30)
    assert (await one.admit(URL, wait=0.01)).probe  # and then this replica dies
    assert not (await two.admit(URL, wait=0.01)).probe
    clock.advance(60)
    assert (await two.admit(URL, wait=0.01)).probe


async def test_documents_for_an_unreachable_endpoint_wait_without_counting_attempts(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/as4"  # nothing listens once closed
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as gw,
        aiohttp.ClientSession() as session,
    ):
        derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
        jobs = [
            await submit_document(
                gw.pool, derived, retry_window=3600, endpoint_url=dead, endpoint_cert=dev_pki.access_points["ap2"].cert
            )
            for _ in range(6)
        ]
        worker = OutboundWorker(
            gw.pool, gw.runtime.identity, gw.runtime.trust, None, retry_initial=0.01,
            guard=EndpointGuard(gw.pool, threshold=3, cooldown=600),
        )  # fmt: skip
        for job in jobs:
            await worker.deliver_now(job)
        attempts = [await gw.pool.fetchval("SELECT attempts FROM outbound_messages WHERE id = $1", j) for j in jobs]
        assert attempts == [1, 1, 1, 0, 0, 0]  # three real failures, then the circuit held the rest
        status = await outbound_queries.outbound_status(gw.pool, jobs[-1])
        assert status is not None and status.state == "retrying"
        assert status.audit[-1][1:] == ("waiting", "waiting: circuit open")
        operator_id, key = await create_operator(gw.pool, "Ops")
        operator = await token(session, gw.url, str(operator_id), key)
        status_code, body = await operator.call("GET", "/v1/operator/endpoints")
        assert status_code == 200
        assert body["data"] == [
            {**body["data"][0], "endpoint": dead, "state": "open", "consecutive_failures": 3, "documents_waiting": 6}
        ]
        async with session.get(gw.url + "/metrics") as r:
            assert f'peppol_endpoint_circuit_open{{endpoint="{dead}"}} 1\n' in await r.text()
