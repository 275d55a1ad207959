"""A sending gateway process killed with SIGKILL after the receiver stored its message, before the
receipt came back: a restarted process takes the job once the short lease runs out, resends
it with the same MessageId, gets the receiver's duplicate receipt, and the document is
delivered, once. Prints how long that took."""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import asyncpg

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.outbound import queries as outbound_queries
from gateway.outbound.states import OutboundState
from gateway.outbound.submission import derive_submission, submit_document
from tests.support.gateways import (
    GatewayProcess,
    free_port,
    gateway_env,
    in_process_gateway,
    new_database,
    register_company,
)
from tests.support.paths import EXAMPLES
from tests.support.proxy import HoldingProxy

FINLAND = "0216:003720774740"
LEASE = float(os.environ.get("CRASH_LEASE_SECONDS", "5"))  # the default is 30; short keeps the test quick


async def test_a_job_whose_sender_was_killed_mid_delivery_is_delivered_once_by_a_restarted_one(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    db_a = await new_database(pg_dsn, template_db)
    proxy_port = free_port()
    async with (
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, workers=False) as b,
        aiohttp.ClientSession() as session,
    ):
        finland = await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
        proxy = HoldingProxy(b.as4_url, session)
        proxy.hold = 1
        runner = await proxy.serve(proxy_port)
        pool = await asyncpg.create_pool(db_a, min_size=1, max_size=2)
        assert pool is not None
        env = gateway_env(dev_pki, "ap1", db_a, free_port(), knot, PEPPOL_WORKERS_LEASE_SECONDS=str(LEASE))
        first, restarted = GatewayProcess(env), GatewayProcess(env)
        try:
            derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
            job = await submit_document(
                pool, derived, retry_window=600,
                endpoint_url=f"http://127.0.0.1:{proxy_port}/as4", endpoint_cert=dev_pki.access_points["ap2"].cert,
            )  # fmt: skip
            await asyncio.to_thread(first.start)
            deadline = time.monotonic() + 60
            while await b.pool.fetchval("SELECT count(*) FROM inbound_messages") < 1:
                assert time.monotonic() < deadline, "the receiver never got the message"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5 * LEASE)  # the heartbeat keeps the waiting delivery claimed
            status = await outbound_queries.outbound_status(pool, job)
            assert status is not None and (status.state, status.attempts) == (OutboundState.SENDING, 1)
            await asyncio.to_thread(first.kill)
            killed = time.monotonic()
            await asyncio.to_thread(restarted.start)
            started = time.monotonic() - killed
            while (status := await outbound_queries.outbound_status(pool, job)) and status.state != "delivered":
                assert status.state in ("sending", "retrying"), status
                assert time.monotonic() < killed + LEASE + 60, "not delivered after the restart"
                await asyncio.sleep(0.05)
            took = time.monotonic() - killed
            print(f"\nkilled mid-delivery → delivered by the restarted process in {took:.1f} s "
                  f"(lease {LEASE:g} s, process start {started:.1f} s)")  # fmt: skip
            assert status is not None and status.attempts == 2
            stored = await b.pool.fetch("SELECT as4_message_id FROM inbound_messages")
            assert len(stored) == 1  # delivered exactly once
            entries = await b.pool.fetchval("SELECT count(*) FROM mailbox_entries WHERE company_id = $1", finland)
            assert entries == 1
        finally:
            proxy.open_all()
            await asyncio.to_thread(first.kill)
            await asyncio.to_thread(restarted.stop)
            await runner.cleanup()
            await pool.close()
