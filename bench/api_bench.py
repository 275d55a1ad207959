"""REST API on loopback against a database seeded with 1,000,000 received documents over 1,000
companies: mailbox page latency (plain, time window, not-yet-acknowledged), authenticated
GET requests/s with 50 concurrent clients, token issuance/s, webhook deliveries/s, and the
query plans of the mailbox queries."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from gateway.core.migrate import apply_migrations
from gateway.dev.pki import create_dev_pki
from gateway.dev.postgres import EmbeddedPostgres
from gateway.security.credentials import create_api_key, create_operator
from gateway.webhooks.delivery import WebhookWorker

ROOT = Path(__file__).parent.parent
DOCUMENTS = 1_000_000
COMPANIES = 1_000
INVOICE_TYPE = (
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017"
    "#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def seed(dsn: str) -> tuple[uuid.UUID, str, uuid.UUID, str]:
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        started = time.perf_counter()
        operator_id, _ = await create_operator(conn, "Bench operator")
        await conn.execute(
            """INSERT INTO companies (id, name, country, business_id, verified, operator_id)
               SELECT gen_random_uuid(), 'Company ' || i, 'NO', lpad(i::text, 9, '0'), true, $1
               FROM generate_series(1, $2) AS i""",
            operator_id,
            COMPANIES,
        )
        content = (ROOT / "examples" / "invoice.xml").read_bytes()
        sha = __import__("hashlib").sha256(content).digest()
        await conn.execute(
            "INSERT INTO documents (sha256, size_bytes, content) VALUES ($1, $2, $3)", sha, len(content), content
        )
        await conn.execute(
            """WITH c AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM companies)
               INSERT INTO inbound_messages (
                   as4_message_id, sending_ap, sender_cert_subject, conversation_id, sender_scheme, sender_value,
                   receiver_scheme, receiver_value, document_type, process, country_c1, document_sha256,
                   payload_bytes, message_bytes, receipt, sent_at, received_at, company_id)
               SELECT 'bench-' || i, 'POP000001', 'CN=POP000001', 'c', 'iso6523-actorid-upis', '0192:991825827',
                      'iso6523-actorid-upis', '0216:' || (i % $2), $3, 'cenbii-procid-ubl::billing', 'NO', $4,
                      5000, 12000, '\\x00', now() - (i % 525600) * interval '1 minute',
                      now() - (($1 - i) * interval '30 seconds'), c.id
               FROM generate_series(1, $1) AS i JOIN c ON c.n = i % $2""",
            DOCUMENTS, COMPANIES, INVOICE_TYPE, sha,
        )  # fmt: skip
        await conn.execute(
            """INSERT INTO mailbox_entries (company_id, message_id, read_at, created_at)
               SELECT company_id, id, CASE WHEN id % 2 = 0 THEN received_at END, received_at
               FROM inbound_messages ORDER BY id"""
        )
        await conn.execute("ANALYZE")
        print(
            f"  seeded {DOCUMENTS:,} received documents over {COMPANIES:,} companies in {time.perf_counter() - started:.1f} s"
        )
        company_id = await conn.fetchval("SELECT id FROM companies ORDER BY id LIMIT 1")
        _, key = await create_api_key(conn, company_id=company_id, label="bench")
        operator_key_id, operator_key = await create_api_key(conn, operator_id=operator_id, label="bench")
        del operator_key_id
        for label, sql in (
            ("newest page", "e.company_id = $1"),
            ("time window", "e.company_id = $1 AND m.received_at >= now() - interval '30 days'"),
            ("not acknowledged", "e.company_id = $1 AND e.read_at IS NULL"),
        ):
            plan = await conn.fetch(
                f"""EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON)
                    SELECT e.id, m.* FROM mailbox_entries e JOIN inbound_messages m ON m.id = e.message_id
                    WHERE {sql} ORDER BY e.id DESC LIMIT 100""",
                company_id,
            )
            lines = [r[0] for r in plan]
            print(
                f"  plan ({label}): "
                + " | ".join(line.strip() for line in lines if "Scan" in line or "Execution" in line)
            )
        return company_id, key, operator_id, operator_key
    finally:
        await conn.close()


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(base: str, company_id: uuid.UUID, key: str) -> None:
    async with aiohttp.ClientSession() as session:
        form = {"grant_type": "client_credentials", "client_id": str(company_id), "client_secret": key}
        async with session.post(f"{base}/oauth2/token", data=form) as r:
            token = (await r.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for label, query in (
            ("newest 100", "direction=RECEIVED&limit=100"),
            (
                "30-day window",
                "direction=RECEIVED&limit=100&received_at_start="
                + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30 * 86400)),
            ),
            ("not acknowledged", "direction=RECEIVED&limit=100&acknowledged=false"),
        ):
            samples = []
            for _ in range(200):
                start = time.perf_counter()
                async with session.get(f"{base}/v1/invoices?{query}", headers=auth) as r:
                    await r.read()
                    assert r.status == 200, r.status
                samples.append(time.perf_counter() - start)
            print(f"  mailbox page, {label:<17} p50 {pct(samples, 0.5):6.2f} ms  p99 {pct(samples, 0.99):6.2f} ms")
        async with session.get(f"{base}/v1/invoices?direction=RECEIVED&limit=1", headers=auth) as r:
            doc_id = (await r.json())["data"]["items"][0]["id"]
        count = 0
        deadline = time.perf_counter() + 5

        async def client() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                async with session.get(f"{base}/v1/invoices/{doc_id}", headers=auth) as r:
                    await r.read()
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(50)))
        print(
            f"  GET /v1/invoices/{{id}} with 50 concurrent clients: {count / (time.perf_counter() - start):,.0f} requests/s"
        )
        tokens = 0
        deadline = time.perf_counter() + 3

        async def issuer() -> None:
            nonlocal tokens
            while time.perf_counter() < deadline:
                async with session.post(f"{base}/oauth2/token", data=form) as r:
                    await r.read()
                tokens += 1

        start = time.perf_counter()
        await asyncio.gather(*(issuer() for _ in range(10)))
        print(f"  token issuance: {tokens / (time.perf_counter() - start):,.0f} tokens/s")


async def webhooks(dsn: str, company_id: uuid.UUID, count: int = 3000) -> None:
    received = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    assert pool is not None
    try:
        await pool.execute("DELETE FROM webhook_outbox")  # only the events written below
        await pool.execute(
            "INSERT INTO webhooks (id, company_id, destination_type, destination, secret) VALUES ($1, $2, 'WEBHOOK', $3, 's')",
            uuid.uuid4(), company_id, f"http://127.0.0.1:{port}/hook",
        )  # fmt: skip
        await pool.execute(
            "INSERT INTO events (company_id, kind, payload) SELECT $1, 'document.received', '{}' FROM generate_series(1, $2)",
            company_id, count,
        )  # fmt: skip
        worker = WebhookWorker(pool)
        start = time.perf_counter()
        await worker.fan_out()
        while received < count:
            await worker.deliver_due(limit=100)
        elapsed = time.perf_counter() - start
        if worker._session is not None:
            await worker._session.close()
        print(
            f"  webhook deliveries to a loopback receiver: {count / elapsed:,.0f} deliveries/s ({count} in {elapsed:.1f} s)"
        )
    finally:
        await pool.close()
        await runner.cleanup()


def main() -> None:
    print(f"REST API ({DOCUMENTS:,} received documents, loopback)")
    with tempfile.TemporaryDirectory() as tmp:
        pki = create_dev_pki(Path(tmp) / "pki")
        postgres = EmbeddedPostgres(Path(tmp) / "pg", durable=False)
        dsn = postgres.start()
        proc = None
        try:
            company_id, key, _, _ = asyncio.run(seed(dsn))
            port = _port()
            d = pki.directory
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": dsn, "PEPPOL_HTTP_PORT": str(port),
                "PEPPOL_AP_KEY": str(d / "ap1.key.pem"), "PEPPOL_AP_CERT": str(d / "ap1.cert.pem"),
                "PEPPOL_AP_TRUST": str(d / "ap-ca.cert.pem"), "PEPPOL_SMP_KEY": str(d / "smp.key.pem"),
                "PEPPOL_SMP_CERT": str(d / "smp.cert.pem"), "PEPPOL_SMP_TRUST": str(d / "smp-ca.cert.pem"),
                "PEPPOL_WORKERS_OUTBOUND": "0", "PEPPOL_WORKERS_WEBHOOK": "0", "PEPPOL_LOG_LEVEL": "warning",
                "PEPPOL_HTTP_RATE_LIMIT": "10000000", "PEPPOL_DATABASE_POOL_MAX": "20",
            }  # fmt: skip
            proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve"], env=env, cwd=ROOT)
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    import urllib.request

                    urllib.request.urlopen(base + "/v1/ping", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            asyncio.run(measure(base, company_id, key))
            asyncio.run(webhooks(dsn, company_id))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)
            postgres.stop()


if __name__ == "__main__":
    main()
