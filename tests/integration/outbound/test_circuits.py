"""The circuit breaker and concurrency limit per receiving endpoint: the rules on a fake clock,
then a real worker against an endpoint that refuses connections."""

from __future__ import annotations

import socket

import aiohttp

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.outbound import queries as outbound_queries
from gateway.outbound.circuits import EndpointGuard
from gateway.outbound.submission import derive_submission, submit_document
from gateway.outbound.worker import OutboundWorker
from gateway.security.credentials import create_operator
from tests.support.api import token
from tests.support.gateways import in_process_gateway, new_database
from tests.support.paths import EXAMPLES

URL = "https://ap.example/as4"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def failing(guard: EndpointGuard, times: int) -> None:
    for _ in range(times):
        assert await guard.admit(URL) == 0
        guard.finished(URL, transport_failure=True)


async def test_the_circuit_opens_after_the_threshold_of_failures_in_a_row() -> None:
    guard = EndpointGuard(threshold=3, cooldown=30, clock=Clock())
    await failing(guard, 2)
    assert guard.circuits[URL].state == "closed"
    assert await guard.admit(URL, wait=0.01) == 0
    assert guard.finished(URL, transport_failure=True) == "open"
    assert await guard.admit(URL, wait=0.01) == 30


async def test_a_success_resets_the_count_of_failures() -> None:
    guard = EndpointGuard(threshold=3, clock=Clock())
    await failing(guard, 2)
    await guard.admit(URL, wait=0.01)
    guard.finished(URL, transport_failure=False)
    await failing(guard, 2)
    assert guard.circuits[URL].state == "closed"


async def test_after_the_cooldown_one_probe_goes_through_and_its_success_closes_the_circuit() -> None:
    clock = Clock()
    guard = EndpointGuard(threshold=1, cooldown=30, clock=clock)
    await failing(guard, 1)
    clock.now += 30
    assert await guard.admit(URL, wait=0.01) == 0  # the probe
    assert await guard.admit(URL, wait=0.01) > 0  # nobody else while it runs
    assert guard.finished(URL, transport_failure=False) == "closed"
    assert await guard.admit(URL, wait=0.01) == 0


async def test_a_failed_probe_opens_the_circuit_for_twice_as_long_up_to_the_maximum() -> None:
    clock = Clock()
    guard = EndpointGuard(threshold=1, cooldown=30, max_cooldown=100, clock=clock)
    await failing(guard, 1)
    for expected in (60, 100, 100):
        clock.now += guard.circuits[URL].cooldown
        assert await guard.admit(URL, wait=0.01) == 0
        assert guard.finished(URL, transport_failure=True) == "open"
        assert guard.circuits[URL].cooldown == expected


async def test_no_more_than_the_limit_of_deliveries_run_at_once_to_one_endpoint() -> None:
    guard = EndpointGuard(max_concurrent=2, clock=Clock())
    assert [await guard.admit(URL, wait=0.01) for _ in range(3)] == [0, 0, 0.5]
    assert await guard.admit("https://other.example/as4", wait=0.01) == 0
    guard.finished(URL, transport_failure=False)
    assert await guard.admit(URL, wait=0.01) == 0


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
            guard=EndpointGuard(threshold=3, cooldown=600),
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
