"""End to end on loopback: documents/s from submission on AP-A to a committed mailbox entry on
AP-B (two `peppol-gateway serve` processes, one PostgreSQL, a Knot DNS SML), latency
percentiles, and CPU seconds per document for both gateways and PostgreSQL together."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

import smp
from gateway.core.database import open_pool
from gateway.core.migrate import apply_migrations
from gateway.dev.dns import KnotDns
from gateway.dev.pki import create_dev_pki
from gateway.dev.postgres import EmbeddedPostgres
from gateway.directory import queries as directory_queries
from gateway.duties.validation import Validator
from gateway.outbound.submission import derive_submission, submit_document
from gateway.security.credentials import create_api_key

ROOT = Path(__file__).parent.parent
ZONE = "sml.e2e.test"
FINLAND = "0216:003720774740"
TICKS = os.sysconf("SC_CLK_TCK")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _db(dsn: str, name: str) -> str:
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, ""))


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def _system_seconds(pid: int) -> float:
    """The kernel's share (stime) of a process's CPU time."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[12]) / TICKS
    except OSError:
        return 0.0


def _postgres_pids(postmaster: int | None) -> list[int]:
    """The bench's own server: its postmaster and the postmaster's children (backends, WAL
    writer...), not other PostgreSQL servers running on the machine."""
    if postmaster is None:
        return []
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == postmaster:
                pids.append(int(entry.name))
    return pids


def _postgres_split(postmaster: int | None) -> dict[str, float]:
    """CPU seconds of the server's processes by what they serve: the backends of each
    gateway's database (the bench's own connections included) and the rest (WAL writer,
    checkpointer, autovacuum, the postmaster)."""
    split = {"e2e_a": 0.0, "e2e_b": 0.0, "other": 0.0}
    for pid in _postgres_pids(postmaster):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        words = title.split()
        database = words[2] if len(words) > 2 and words[0] == "postgres:" else ""
        split[database if database in split else "other"] += _cpu_seconds([pid])
    return split


# The bench's own statements (submission bookkeeping and polling), left out of the count.
_BENCH_STATEMENTS = (
    "SELECT coalesce(max(id), 0) FROM inbound_messages",
    "SELECT as4_message_id FROM outbound_messages WHERE id = $1",
    "SELECT count(*) FROM inbound_messages WHERE id > $1",
    "SELECT pg_database_size(current_database())",
    "INSERT INTO companies",
    "INSERT INTO participant",
    "INSERT INTO api_keys",
)
_STATEMENTS = """
    SELECT d.datname AS db, s.calls, s.total_exec_time + s.total_plan_time AS ms, s.plans, s.total_plan_time AS plan_ms,
           s.query
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    WHERE d.datname IN ('e2e_a', 'e2e_b') ORDER BY s.calls DESC"""


async def _print_statements(conn: asyncpg.Connection, count: int) -> None:
    """Statements per document on each side, from pg_stat_statements (BENCH_PG_STATEMENTS=1)."""
    rows = [r for r in await conn.fetch(_STATEMENTS) if not any(b in r["query"] for b in _BENCH_STATEMENTS)]
    for db, side in (("e2e_a", "AP-A (submission + worker)"), ("e2e_b", "AP-B (receiver)")):
        mine = [r for r in rows if r["db"] == db]
        calls, ms = sum(r["calls"] for r in mine), sum(r["ms"] for r in mine)
        print(f"  statements per document, {side}: {calls / count:.2f} ({ms / count:.3f} ms in PostgreSQL)")
        for r in mine:
            if r["calls"] >= count / 20:
                text = " ".join(r["query"].split())[:130]
                plans = f"{r['plans'] / count:4.2f} plans {r['plan_ms'] / count:5.3f} ms"
                print(f"    {r['calls'] / count:6.2f} {r['ms'] / count:6.3f} ms ({plans})  {text}")


def _env(pki_dir: Path, stem: str, dsn: str, port: int, knot: KnotDns, workers: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": dsn,
        "PEPPOL_HTTP_PORT": str(port),
        "PEPPOL_HTTP_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PEPPOL_AP_KEY": str(pki_dir / f"{stem}.key.pem"),
        "PEPPOL_AP_CERT": str(pki_dir / f"{stem}.cert.pem"),
        "PEPPOL_AP_TRUST": str(pki_dir / "ap-ca.cert.pem"),
        "PEPPOL_AP_REVOCATION": "off",
        "PEPPOL_SMP_KEY": str(pki_dir / "smp.key.pem"),
        "PEPPOL_SMP_CERT": str(pki_dir / "smp.cert.pem"),
        "PEPPOL_SMP_TRUST": str(pki_dir / "smp-ca.cert.pem"),
        "PEPPOL_SML_ZONE": ZONE,
        "PEPPOL_SML_DNS": knot.address,
        "PEPPOL_WORKERS_OUTBOUND": str(workers),
        "PEPPOL_WORKERS_POLL_INTERVAL": "1",
        "PEPPOL_DATABASE_POOL_MAX": "20",
        "PEPPOL_LOG_LEVEL": "warning",
    }


def _start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve"], env=env, cwd=ROOT, start_new_session=True)
    url = f"{env['PEPPOL_HTTP_PUBLIC_URL']}/v1/ping"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gateway did not start")


async def receiving_company(pool_b: asyncpg.Pool, knot: KnotDns, port_b: int) -> None:
    """The Finnish company on AP-B, published in its SMP and in the SML."""
    participant = smp.ParticipantId.parse(FINLAND)
    services = [
        (str(d.document_type), str(p)) for d in smp.profile_services("INVOICE_AND_CREDIT_NOTE") for p in d.processes
    ]
    async with pool_b.acquire() as c:
        company = await directory_queries.add_company(c, "Suomen Osto Oy", "FI", participant.local_id)
        await directory_queries.add_participant(c, company, participant.scheme, participant.value, services)
    await smp.LocalSml(
        ZONE, knot.address, f"http://127.0.0.1:{port_b}/smp", key_name=knot.key_name, key_secret=knot.secret
    ).register(participant)


def bench_invoice(number: int | None = None) -> bytes:
    """The example invoice with eight more lines (about 10 KB in its envelope); with ``number``
    an invoice ID of its own, so that the API does not refuse it as sent already."""
    invoice = (ROOT / "examples" / "invoice.xml").read_bytes()
    head, _, tail = invoice.rpartition(b"</Invoice>")
    line = head[head.index(b"<cac:InvoiceLine>") :]
    if number is not None:
        head = head.replace(b"<cbc:ID>NS-2026-1001</cbc:ID>", b"<cbc:ID>NS-2026-1001-%d</cbc:ID>" % number, 1)
    return head + line * 8 + b"</Invoice>" + tail


def bench_document() -> Any:
    """The bench invoice in its envelope, derived once."""
    return derive_submission(bench_invoice())


@dataclass
class RestClient:
    """Submissions through AP-A's REST API (``BENCH_REST=1``): the sending company's token."""

    session: aiohttp.ClientSession
    url: str
    token: str
    sent: int = 0

    async def submit(self, pool_a: asyncpg.Pool) -> str:
        self.sent += 1
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/xml"}
        async with self.session.post(f"{self.url}/v1/documents", data=bench_invoice(self.sent), headers=headers) as r:
            body = await r.json()
            assert r.status == 202, body
        job = int(body["data"]["id"].removeprefix("s"))
        return str(await pool_a.fetchval("SELECT as4_message_id FROM outbound_messages WHERE id = $1", job))


async def rest_client(session: aiohttp.ClientSession, pool_a: asyncpg.Pool, port_a: int) -> RestClient:
    """The Norwegian sender on AP-A, with an API key traded for a token."""
    sender = smp.ParticipantId.parse("0192:991825827")
    async with pool_a.acquire() as c:
        company = await directory_queries.add_company(c, "Nordic Supplies AS", "NO", sender.local_id)
        await directory_queries.add_participant(c, company, sender.scheme, sender.value, [])
    _, secret = await create_api_key(pool_a, company_id=company)
    url = f"http://127.0.0.1:{port_a}"
    form = {"grant_type": "client_credentials", "client_id": str(company), "client_secret": secret}
    async with session.post(f"{url}/oauth2/token", data=form) as r:
        body = await r.json()
        assert r.status == 200, body
    return RestClient(session, url, body["access_token"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _round(
    pool_a: asyncpg.Pool,
    pool_b: asyncpg.Pool,
    derived: object,
    count: int,
    rate: float | None,
    validator: Validator | None = None,
    rest: RestClient | None = None,
) -> tuple[float, list[float]]:
    """Submit ``count`` documents (at ``rate`` per second, or all at once; validated first, as
    the API does, when a validator is given) and wait for all of them in AP-B's mailbox.
    Returns (elapsed seconds, latencies in ms)."""
    start_id = await pool_b.fetchval("SELECT coalesce(max(id), 0) FROM inbound_messages")
    started = time.perf_counter()
    submitted: dict[str, float] = {}

    async def one(i: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        if validator is not None:
            # the bench document repeats one line, so BR-CO-10 fails; the cost is the same
            await validator.validate(derived.sbd)  # type: ignore[attr-defined]
        if rest is not None:
            submitted[await rest.submit(pool_a)] = time.time()
            return
        job = await submit_document(pool_a, derived, retry_window=600)  # type: ignore[arg-type]
        message_id = await pool_a.fetchval("SELECT as4_message_id FROM outbound_messages WHERE id = $1", job)
        submitted[message_id] = time.time()

    await asyncio.gather(*(one(i) for i in range(count)))
    while True:
        done = await pool_b.fetchval("SELECT count(*) FROM inbound_messages WHERE id > $1", start_id)
        if done >= count:
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    rows = await pool_b.fetch(
        "SELECT as4_message_id, extract(epoch FROM received_at) AS at FROM inbound_messages WHERE id > $1",
        start_id,
    )
    latencies = [
        (float(r["at"]) - submitted[r["as4_message_id"]]) * 1000 for r in rows if r["as4_message_id"] in submitted
    ]
    return elapsed, latencies


async def _run(tmp: Path, count: int) -> None:
    pki = create_dev_pki(tmp / "pki")
    statements = os.environ.get("BENCH_PG_STATEMENTS") == "1"
    settings = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track_planning": "on"}
    settings = settings if statements else {}
    postgres = EmbeddedPostgres(tmp / "pg", durable=False, settings=settings)
    postgres.start()
    # through the server's Unix socket, as `peppol-gateway serve` does with its own embedded
    # server (BENCH_TCP=1: over loopback TCP, as with a server on another host)
    admin = postgres.dsn if os.environ.get("BENCH_TCP") == "1" else postgres.socket_dsn
    knot = KnotDns(tmp / "dns", ZONE)
    knot.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        conn = await asyncpg.connect(admin)
        for name in ("e2e_a", "e2e_b"):
            await conn.execute(f'CREATE DATABASE "{name}"')
        if statements:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        else:
            await conn.close()
        dsn_a, dsn_b = _db(admin, "e2e_a"), _db(admin, "e2e_b")
        for dsn in (dsn_a, dsn_b):
            c = await asyncpg.connect(dsn)
            await apply_migrations(c)
            await c.close()
        port_a, port_b = _port(), _port()
        # pools as the gateway opens them: the submissions made here stand for the API's
        pool_b = await open_pool(dsn_b, min_size=1, max_size=4)
        pool_a = await open_pool(dsn_a, min_size=2, max_size=20)
        await receiving_company(pool_b, knot, port_b)
        procs.append(_start(_env(pki.directory, "ap2", dsn_b, port_b, knot, 0)))
        env_a = _env(pki.directory, "ap1", dsn_a, port_a, knot, 16)
        rest_mode = os.environ.get("BENCH_REST") == "1"
        if rest_mode:  # the API's path, validation apart (measured below) and without its rate limit
            env_a.update({"PEPPOL_VALIDATION_ON_SUBMIT": "false", "PEPPOL_HTTP_RATE_LIMIT": "10000000"})
        procs.append(_start(env_a))
        derived = bench_document()
        print(f"  document: {len(derived.sbd)} bytes in its envelope")
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        rest = await rest_client(session, pool_a, port_a) if rest_mode else None
        if rest is not None:
            print("  submitted through AP-A's REST API (POST /v1/documents, a bare invoice, ID of its own)")
        await _round(pool_a, pool_b, derived, 40, None, rest=rest)  # warm-up: discovery cache, connections
        pids = [p.pid for p in procs]
        profile_dir = os.environ.get("BENCH_PROFILE")
        spies = []
        if profile_dir:  # py-spy flame data of both gateways during the measured burst
            for name, pid in (("ap-b", pids[0]), ("ap-a", pids[1])):
                spies.append(subprocess.Popen(
                    ["py-spy", "record", "--format", "raw", "-r", "200", *os.environ.get("BENCH_PYSPY_ARGS", "").split(), "-o", f"{profile_dir}/{name}.txt", "-p", str(pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
            # and perf samples of the PostgreSQL server's processes, when perf is installed
            server = ",".join(str(p) for p in _postgres_pids(postgres.postmaster_pid))
            perf = ["perf", "record", "-F", "2999", "-g", "-o", f"{profile_dir}/postgres.perf", "-p", server]
            try:
                spies.append(subprocess.Popen(perf, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            except FileNotFoundError:
                pass
            await asyncio.sleep(1)
        size_query = "SELECT pg_database_size(current_database())"
        size_before = await pool_a.fetchval(size_query) + await pool_b.fetchval(size_query)
        postmaster = postgres.postmaster_pid
        if statements:
            await conn.execute("SELECT pg_stat_statements_reset()")
        cpu_before = _cpu_seconds(pids) + _cpu_seconds(_postgres_pids(postmaster))
        pg_before = _cpu_seconds(_postgres_pids(postmaster))
        split_before = _postgres_split(postmaster)
        gw_before = [_cpu_seconds([pid]) for pid in pids]
        sys_before = [_system_seconds(pid) for pid in pids]
        elapsed, latencies = await _round(pool_a, pool_b, derived, count, None, rest=rest)
        cpu = _cpu_seconds(pids) + _cpu_seconds(_postgres_pids(postmaster)) - cpu_before
        pg = _cpu_seconds(_postgres_pids(postmaster)) - pg_before
        split = {k: v - split_before.get(k, 0.0) for k, v in _postgres_split(postmaster).items()}
        gw = [_cpu_seconds([pid]) - before for pid, before in zip(pids, gw_before, strict=True)]
        kernel = [_system_seconds(pid) - before for pid, before in zip(pids, sys_before, strict=True)]
        for spy in spies:
            spy.send_signal(2)
            spy.wait(timeout=30)
        rate = count / elapsed
        print(
            f"  burst of {count}: {rate:.1f} documents/s, latency p50 {pct(latencies, 0.5):.1f} ms p99 {pct(latencies, 0.99):.1f} ms"
        )
        print(
            f"  CPU per document (both gateways + PostgreSQL): {cpu / count * 1000:.2f} ms "
            f"= AP-A {gw[1] / count * 1000:.2f} + AP-B {gw[0] / count * 1000:.2f} + PostgreSQL {pg / count * 1000:.2f}"
        )
        print(
            f"  of which in the kernel (system time): AP-A {kernel[1] / count * 1000:.2f}, "
            f"AP-B {kernel[0] / count * 1000:.2f}"
        )
        print(
            f"  PostgreSQL per document: AP-A's backends {split['e2e_a'] / count * 1000:.2f} + AP-B's "
            f"{split['e2e_b'] / count * 1000:.2f} + other processes {split['other'] / count * 1000:.2f} ms"
        )
        if statements:
            for pool in (pool_a, pool_b):
                rows = await pool.fetch(
                    "SELECT pg_column_compression(content) AS c, count(*) AS n, avg(size_bytes)::int AS size,"
                    " avg(pg_column_size(content))::int AS stored FROM documents GROUP BY 1"
                )
                print(
                    "  documents stored:",
                    ", ".join(f"{r['n']} {r['c']} ({r['size']} -> {r['stored']} B)" for r in rows),
                )
            await _print_statements(conn, count)
            await conn.close()
        await pool_a.execute("CHECKPOINT")
        size_after = await pool_a.fetchval(size_query) + await pool_b.fetchval(size_query)
        print(
            f"  database growth per document (sender + receiver, all evidence kept): "
            f"{(size_after - size_before) / count / 1024:.1f} KiB"
        )
        if os.environ.get("BENCH_BURST_ONLY") == "1" or rest is not None:  # the burst's figures only
            await session.close()
            await pool_a.close()
            await pool_b.close()
            return
        half = max(1.0, rate / 2)
        steady = min(count, int(half * 10))
        elapsed, latencies = await _round(pool_a, pool_b, derived, steady, half)
        print(
            f"  steady {half:.0f} documents/s for {steady}: latency p50 {pct(latencies, 0.5):.1f} ms p99 {pct(latencies, 0.99):.1f} ms"
        )
        validator = Validator(2)
        try:
            await _round(pool_a, pool_b, derived, 20, None, validator)  # warm-up: stylesheets compiled per process
            elapsed, latencies = await _round(pool_a, pool_b, derived, count, None, validator)
            print(
                f"  burst of {count} validated on submission (EN 16931 + Peppol, pool of 2): "
                f"{count / elapsed:.1f} documents/s, latency p50 {pct(latencies, 0.5):.1f} ms "
                f"p99 {pct(latencies, 0.99):.1f} ms"
            )
        finally:
            validator.close()
        await session.close()
        await pool_a.close()
        await pool_b.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
        knot.stop()
        postgres.stop()


def main(count: int = 400) -> None:
    print("End to end: AP-A submission -> AP-B mailbox (two gateway processes, loopback)")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp), count))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
