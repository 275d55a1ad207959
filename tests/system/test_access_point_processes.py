"""Gateways as real processes: two of them sharing one outbound queue, and one killed with
SIGKILL between receiving a message and committing it."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.directory import queries as directory_queries
from gateway.outbound import queries as outbound_queries
from gateway.outbound.submission import derive_submission, submit_document
from tests.support.gateways import (
    GatewayProcess,
    free_port,
    gateway_env,
    in_process_gateway,
    new_database,
    register_company,
    wait_for_state,
)
from tests.support.paths import EXAMPLES

FINLAND = "0216:003720774740"


async def test_two_processes_share_one_queue_without_sending_anything_twice(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    db_a = await new_database(pg_dsn, template_db)
    async with in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, workers=False) as b:
        finland = await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
        pool = await asyncpg.create_pool(db_a, min_size=1, max_size=4)
        assert pool is not None
        try:
            derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
            jobs = [await submit_document(pool, derived, retry_window=60) for _ in range(30)]
            processes = [
                GatewayProcess(gateway_env(dev_pki, "ap1", db_a, free_port(), knot, PEPPOL_WORKERS_OUTBOUND="3"))
                for _ in range(2)
            ]
            try:
                for p in processes:
                    await asyncio.to_thread(p.start)
                for job in jobs:
                    assert await wait_for_state(pool, job, {"delivered", "failed"}, timeout=60) == "delivered"
            finally:
                for p in processes:
                    await asyncio.to_thread(p.stop)
            sendings = await pool.fetch(
                "SELECT outbound_id, count(*) AS n FROM outbound_audit WHERE state = 'sending' GROUP BY outbound_id"
            )
            assert sorted(r["outbound_id"] for r in sendings) == sorted(jobs)
            assert {r["n"] for r in sendings} == {1}
        finally:
            await pool.close()
        count = await b.pool.fetchval("SELECT count(*) FROM mailbox_entries WHERE company_id = $1", finland)
        assert count == 30
        received = await b.pool.fetchval("SELECT count(DISTINCT as4_message_id) FROM inbound_messages")
        assert received == 30


async def _wait_until_blocked(admin: asyncpg.Connection, database: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", database
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the receiving gateway never reached its commit")


async def test_receiver_killed_before_commit_loses_nothing_and_stores_once(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    db_b = await new_database(pg_dsn, template_db)
    database_b = db_b.rsplit("/", 1)[1]
    port = free_port()
    receiver = GatewayProcess(gateway_env(dev_pki, "ap2", db_b, port, knot, PEPPOL_WORKERS_OUTBOUND="0"))
    await asyncio.to_thread(receiver.start)
    try:
        pool_b = await asyncpg.create_pool(db_b, min_size=1, max_size=2)
        assert pool_b is not None
        async with pool_b.acquire() as conn:
            company = await directory_queries.add_company(conn, "Suomen Osto Oy", "FI", "003720774740")
            await directory_queries.add_participant(
                conn, company, "iso6523-actorid-upis", FINLAND,
                [("busdox-docid-qns::" + d, "cenbii-procid-ubl::urn:fdc:peppol.eu:2017:poacc:billing:01:1.0")
                 for d in (derive_submission((EXAMPLES / "invoice.xml").read_bytes()).document_type.value,)],
            )  # fmt: skip
        admin = await asyncpg.connect(pg_dsn)
        lock = await asyncpg.connect(db_b)
        try:
            async with in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a:
                tx = lock.transaction()
                await tx.start()
                await lock.execute("LOCK TABLE inbound_messages IN EXCLUSIVE MODE")  # reads pass, inserts wait
                job = await submit_document(
                    a.pool, derive_submission((EXAMPLES / "invoice.xml").read_bytes()), retry_window=60,
                    endpoint_url=f"http://127.0.0.1:{port}/as4", endpoint_cert=dev_pki.access_points["ap2"].cert,
                )  # fmt: skip
                await _wait_until_blocked(admin, database_b)
                await asyncio.to_thread(receiver.kill)
                await tx.rollback()
                assert await wait_for_state(a.pool, job, {"retrying"}) == "retrying"
                assert await pool_b.fetchval("SELECT count(*) FROM inbound_messages") == 0
                await asyncio.to_thread(receiver.start)
                assert await wait_for_state(a.pool, job, {"delivered", "failed"}) == "delivered"
        finally:
            await lock.close()
            await admin.close()
        assert await pool_b.fetchval("SELECT count(*) FROM mailbox_entries") == 1
        assert await pool_b.fetchval("SELECT count(*) FROM inbound_messages") == 1
        await pool_b.close()
    finally:
        await asyncio.to_thread(receiver.stop)


async def test_sigterm_drains_and_gives_a_delivery_still_in_flight_back_to_the_queue(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    answered = asyncio.Event()

    async def slow_receiver(request: web.Request) -> web.Response:
        await request.read()
        answered.set()
        await asyncio.sleep(60)  # never answers within the grace period
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/as4", slow_receiver)
    receiver = TestServer(app, host="127.0.0.1")
    await receiver.start_server()
    db = await new_database(pg_dsn, template_db)
    pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
    assert pool is not None
    gateway = GatewayProcess(gateway_env(dev_pki, "ap1", db, free_port(), knot, PEPPOL_HTTP_SHUTDOWN_TIMEOUT="1"))
    try:
        await asyncio.to_thread(gateway.start)
        derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
        job = await submit_document(
            pool, derived, retry_window=600, endpoint_url=str(receiver.make_url("/as4")),
            endpoint_cert=dev_pki.access_points["ap2"].cert,
        )  # fmt: skip
        await asyncio.wait_for(answered.wait(), 30)
        assert gateway.proc is not None
        gateway.proc.send_signal(15)
        assert await asyncio.to_thread(gateway.proc.wait, 20) == 0
        status = await outbound_queries.outbound_status(pool, job)
        assert status is not None and status.state == "retrying"
        assert status.audit[-1][2] == "released: the gateway stopped"
        assert await pool.fetchval("SELECT locked_until FROM outbound_messages WHERE id = $1", job) is None
    finally:
        await asyncio.to_thread(gateway.stop)
        await pool.close()
        await receiver.close()
