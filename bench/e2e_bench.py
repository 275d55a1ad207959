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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
    return urlunsplit((p.scheme, p.netloc, "/" + name, "", ""))


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


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


# The bench's own statements (submission bookkeeping and polling), left out of the count.
_BENCH_STATEMENTS = (
    "SELECT coalesce(max(id), 0) FROM inbound_messages",
    "SELECT as4_message_id FROM outbound_messages WHERE id = $1",
    "SELECT count(*) FROM inbound_messages WHERE id > $1",
    "SELECT pg_database_size(current_database())",
)
_STATEMENTS = """
    SELECT d.datname AS db, s.calls, s.total_exec_time + s.total_plan_time AS ms, s.query
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
                print(f"    {r['calls'] / count:6.2f} {r['ms'] / count:6.3f} ms  {text}")


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


def bench_document() -> Any:
    """The example invoice with eight more lines: about 10 KB in its envelope."""
    invoice = (ROOT / "examples" / "invoice.xml").read_bytes()
    head, _, tail = invoice.rpartition(b"</Invoice>")
    line = head[head.index(b"<cac:InvoiceLine>") :]
    return derive_submission(head + line * 8 + b"</Invoice>" + tail)


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
    settings = {"shared_preload_libraries": "pg_stat_statements"} if statements else {}
    postgres = EmbeddedPostgres(tmp / "pg", durable=False, settings=settings)
    admin = postgres.start()
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
        procs.append(_start(_env(pki.directory, "ap1", dsn_a, port_a, knot, 16)))
        derived = bench_document()
        print(f"  document: {len(derived.sbd)} bytes in its envelope")
        await _round(pool_a, pool_b, derived, 40, None)  # warm-up: discovery cache, connections
        pids = [p.pid for p in procs]
        profile_dir = os.environ.get("BENCH_PROFILE")
        spies = []
        if profile_dir:  # py-spy flame data of both gateways during the measured burst
            for name, pid in (("ap-b", pids[0]), ("ap-a", pids[1])):
                spies.append(subprocess.Popen(
                    ["py-spy", "record", "--format", "raw", "-r", "200", "-o", f"{profile_dir}/{name}.txt", "-p", str(pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
            await asyncio.sleep(1)
        size_query = "SELECT pg_database_size(current_database())"
        size_before = await pool_a.fetchval(size_query) + await pool_b.fetchval(size_query)
        postmaster = postgres.postmaster_pid
        if statements:
            await conn.execute("SELECT pg_stat_statements_reset()")
        cpu_before = _cpu_seconds(pids) + _cpu_seconds(_postgres_pids(postmaster))
        pg_before = _cpu_seconds(_postgres_pids(postmaster))
        gw_before = [_cpu_seconds([pid]) for pid in pids]
        elapsed, latencies = await _round(pool_a, pool_b, derived, count, None)
        cpu = _cpu_seconds(pids) + _cpu_seconds(_postgres_pids(postmaster)) - cpu_before
        pg = _cpu_seconds(_postgres_pids(postmaster)) - pg_before
        gw = [_cpu_seconds([pid]) - before for pid, before in zip(pids, gw_before, strict=True)]
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
        if statements:
            await _print_statements(conn, count)
            await conn.close()
        await pool_a.execute("CHECKPOINT")
        size_after = await pool_a.fetchval(size_query) + await pool_b.fetchval(size_query)
        print(
            f"  database growth per document (sender + receiver, all evidence kept): "
            f"{(size_after - size_before) / count / 1024:.1f} KiB"
        )
        if os.environ.get("BENCH_BURST_ONLY") == "1":  # the burst's figures only, for profiling
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
