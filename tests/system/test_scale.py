"""Three gateway processes share one outbound queue; one is killed with SIGKILL mid-run. Every
document still reaches the receiver exactly once (the receiver's count), and every inbound
message is stored once."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.directory import queries as directory_queries
from gateway.documents import queries as documents_queries
from gateway.outbound.submission import derive_submission
from tests.support.gateways import GatewayProcess, free_port, gateway_env, new_database
from tests.support.paths import EXAMPLES

FINLAND = "0216:003720774740"
DOCUMENTS = int(__import__("os").environ.get("SCALE_DOCUMENTS", "5000"))


async def test_documents_are_delivered_once_although_a_sender_is_killed(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    db_a, db_b = await new_database(pg_dsn, template_db), await new_database(pg_dsn, template_db)
    port_b = free_port()
    receiver = GatewayProcess(gateway_env(dev_pki, "ap2", db_b, port_b, knot, PEPPOL_WORKERS_OUTBOUND="0"))
    pool_a = await asyncpg.create_pool(db_a, min_size=1, max_size=4)
    pool_b = await asyncpg.create_pool(db_b, min_size=1, max_size=2)
    assert pool_a is not None and pool_b is not None
    senders: list[GatewayProcess] = []
    try:
        derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
        async with pool_b.acquire() as conn:
            company = await directory_queries.add_company(conn, "Suomen Osto Oy", "FI", "003720774740")
            await directory_queries.add_participant(
                conn, company, "iso6523-actorid-upis", FINLAND, [(str(derived.document_type), str(derived.process))]
            )
        await asyncio.to_thread(receiver.start)
        # Submit everything first (the fixed endpoint skips discovery: this is about the queue).
        cert = dev_pki.access_points["ap2"].cert.public_bytes(
            __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).Encoding.DER
        )
        async with pool_a.acquire() as conn:
            await conn.execute(
                """INSERT INTO documents (sha256, size_bytes, content) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
                documents_queries.sha256(derived.sbd), len(derived.sbd), derived.sbd,
            )  # fmt: skip
            await conn.execute(
                """INSERT INTO outbound_messages (sender, receiver, document_type, process, country_c1, instance_identifier,
                       document_sha256, as4_message_id, conversation_id, give_up_at, endpoint_url, endpoint_cert, fixed_endpoint)
                   SELECT $1, $2, $3, $4, 'NO', 'i-' || i, $5, 'scale-' || i || '@test', 'c', now() + interval '1 hour',
                          $6, $7, true
                   FROM generate_series(1, $8) AS i""",
                str(derived.sender), str(derived.receiver), str(derived.document_type), str(derived.process),
                documents_queries.sha256(derived.sbd), f"http://127.0.0.1:{port_b}/as4", cert, DOCUMENTS,
            )  # fmt: skip
        senders = [
            GatewayProcess(
                gateway_env(dev_pki, "ap1", db_a, free_port(), knot, PEPPOL_WORKERS_OUTBOUND="4",
                            PEPPOL_WORKERS_LEASE_SECONDS="5", PEPPOL_WORKERS_POLL_INTERVAL="0.2")
            )
            for _ in range(3)
        ]  # fmt: skip
        for sender in senders:
            await asyncio.to_thread(sender.start)
        deadline = time.monotonic() + 300
        while await pool_b.fetchval("SELECT count(*) FROM inbound_messages") < DOCUMENTS // 3:
            assert time.monotonic() < deadline, "no progress"
            await asyncio.sleep(0.2)
        await asyncio.to_thread(senders[0].kill)  # mid-run, with jobs claimed and messages in flight
        while await pool_a.fetchval("SELECT count(*) FROM outbound_messages WHERE state <> 'delivered'"):
            failed = await pool_a.fetchval("SELECT count(*) FROM outbound_messages WHERE state = 'failed'")
            assert failed == 0, await pool_a.fetch(
                "SELECT last_error FROM outbound_messages WHERE state = 'failed' LIMIT 3"
            )
            assert time.monotonic() < deadline, "the run did not finish"
            await asyncio.sleep(0.5)
        stored = await pool_b.fetchval("SELECT count(*) FROM inbound_messages")
        distinct = await pool_b.fetchval("SELECT count(DISTINCT as4_message_id) FROM inbound_messages")
        mailbox = await pool_b.fetchval("SELECT count(*) FROM mailbox_entries")
        assert stored == distinct == mailbox == DOCUMENTS
    finally:
        for sender in senders:
            await asyncio.to_thread(sender.stop)
        await asyncio.to_thread(receiver.stop)
        await pool_a.close()
        await pool_b.close()
