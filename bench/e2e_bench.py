"""End to end on loopback, as an ERP uses it: invoices POSTed to AP-A's REST API, sent by AP-A's
outbound workers over AS4 to AP-B (found through a Knot DNS SML and AP-B's SMP), committed to
AP-B's mailbox; two `peppol-gateway serve` processes and one PostgreSQL on this machine.

* burst: N documents submitted at once. Documents/s from the first submission to the last
  mailbox commit; CPU per document of AP-A, AP-B and PostgreSQL (this bench's cluster only:
  postmaster, backends, and the backends gone) from the first submission until AP-A has every
  receipt, read from /proc/<pid>/stat.
* paced: documents submitted on a steady schedule at half the burst rate; latency from each
  document's scheduled submission to the commit of its mailbox entry on AP-B (a trigger this
  bench adds to AP-B's database for that run NOTIFYs each new entry, and a notification is
  delivered when its transaction commits).
* validated: AP-A restarted with validation on submission (its process pool), a burst of M.

Every document is a distinct invoice (its own number) of ~10 KB in its envelope. The bench
client's own CPU is shown and never counted. ``--submit direct`` queues documents from the bench
process instead of the API (AP-A then only sends), as this bench did before.

    python -m bench.e2e_bench [--docs N] [--paced-seconds S] [--validated M] [--submit rest|direct]

`make bench` runs it; it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

import smp
from bench import procs
from bench.report import Figure
from gateway.core.migrate import apply_migrations
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki, create_dev_pki
from gateway.dev.postgres import EmbeddedPostgres
from gateway.directory import queries as directory_queries
from gateway.duties.validation import Validator
from gateway.outbound.states import OutboundState
from gateway.outbound.submission import derive_submission, submit_document
from gateway.security.credentials import create_api_key

ROOT = Path(__file__).parent.parent
ZONE = "sml.e2e.test"
FINLAND = "0216:003720774740"
NORWAY = "0192:991825827"  # the example invoice's supplier, AP-A's sending company
INVOICE_NUMBER = b"<cbc:ID>NS-2026-1001</cbc:ID>"


def _port() -> int:
    """One free port (for several at once, :func:`_ports`)."""
    return _ports(1)[0]


def _ports(count: int) -> list[int]:
    """Free ports, distinct: each is held until all are chosen (one at a time, the kernel may
    hand out the same port twice, and the second gateway then cannot listen)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _db(dsn: str, name: str) -> str:
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + name, "", ""))


def _cpu_seconds(pids: list[int]) -> float:
    return sum(procs.own_cpu(pid) for pid in pids)


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
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode} at start")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("gateway did not start")


async def receiving_company(pool_b: asyncpg.Pool, knot: KnotDns, port_b: int) -> uuid.UUID:
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
    return company


async def sending_company(pool_a: asyncpg.Pool) -> tuple[str, str]:
    """The example invoice's supplier on AP-A with an API key: (client id, secret). It sends a
    document with rule findings anyway (the bench invoice repeats one line, so BR-CO-10 fails;
    validating it costs the same) and sends the same invoice again if asked."""
    participant = smp.ParticipantId.parse(NORWAY)
    async with pool_a.acquire() as c:
        company = await directory_queries.add_company(c, "Nordic Supplies AS", "NO", participant.local_id)
        await directory_queries.add_participant(c, company, participant.scheme, participant.value, [])
        await c.execute(
            "UPDATE companies SET outbound_validation = 'warn', duplicate_check = false WHERE id = $1", company
        )
        _, secret = await create_api_key(c, company_id=company, label="bench")
    return str(company), secret


def bench_invoice() -> bytes:
    """The example invoice with eight more lines: about 10 KB in its envelope."""
    invoice = (ROOT / "examples" / "invoice.xml").read_bytes()
    head, _, tail = invoice.rpartition(b"</Invoice>")
    line = head[head.index(b"<cac:InvoiceLine>") :]
    return head + line * 8 + b"</Invoice>" + tail


def numbered(invoice: bytes, number: str) -> bytes:
    """The invoice under its own invoice number."""
    return invoice.replace(INVOICE_NUMBER, f"<cbc:ID>{number}</cbc:ID>".encode(), 1)


def bench_document() -> Any:
    return derive_submission(bench_invoice())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
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
    """Queue ``count`` copies of one derived document from this process (at ``rate`` per second,
    or all at once; validated first when a validator is given) and wait for all of them in AP-B's
    mailbox. Returns (elapsed seconds, latencies in ms). Used by the scale bench."""
    start_id = await pool_b.fetchval("SELECT coalesce(max(id), 0) FROM inbound_messages")
    started = time.perf_counter()
    submitted: dict[str, float] = {}

    async def one(i: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        if validator is not None:
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


# (AS4 message id, AP-A job id) of one submitted document
Submit = Callable[[int], Awaitable[tuple[str, int]]]


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Network:
    """Both gateways, their databases in one cluster, the SML; AP-A restartable with other
    settings."""

    tmp: Path
    ap_a_workers: int = 16
    pki: DevPki = field(init=False)
    postgres: EmbeddedPostgres = field(init=False)
    knot: KnotDns = field(init=False)
    dsn_a: str = ""
    dsn_b: str = ""
    port_a: int = 0
    port_b: int = 0
    pool_a: asyncpg.Pool = field(init=False)
    pool_b: asyncpg.Pool = field(init=False)
    receiver: uuid.UUID | None = None
    client_id: str = ""
    secret: str = ""
    ap_a: subprocess.Popen[bytes] | None = None
    ap_b: subprocess.Popen[bytes] | None = None

    async def start(self, *, validate_on_submit: bool = False, prefix: str = "e2e") -> None:
        self.pki = create_dev_pki(self.tmp / "pki")
        self.postgres = EmbeddedPostgres(self.tmp / "pg", durable=False)
        admin = await asyncio.to_thread(self.postgres.start)
        self.knot = KnotDns(self.tmp / "dns", ZONE)
        self.knot.start()
        conn = await asyncpg.connect(admin)
        for name in (f"{prefix}_a", f"{prefix}_b"):
            await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        self.dsn_a, self.dsn_b = _db(admin, f"{prefix}_a"), _db(admin, f"{prefix}_b")
        for dsn in (self.dsn_a, self.dsn_b):
            c = await asyncpg.connect(dsn)
            await apply_migrations(c)
            await c.close()
        self.port_a, self.port_b = _ports(2)
        pool_b = await asyncpg.create_pool(self.dsn_b, min_size=1, max_size=4)
        pool_a = await asyncpg.create_pool(self.dsn_a, min_size=1, max_size=20)
        assert pool_a is not None and pool_b is not None
        self.pool_a, self.pool_b = pool_a, pool_b
        self.receiver = await receiving_company(pool_b, self.knot, self.port_b)
        self.client_id, self.secret = await sending_company(pool_a)
        env_b = {**_env(self.pki.directory, "ap2", self.dsn_b, self.port_b, self.knot, 0), **self._quiet()}
        self.ap_b = await asyncio.to_thread(_start, env_b)
        await self.start_ap_a(validate_on_submit=validate_on_submit)

    @staticmethod
    def _quiet() -> dict[str, str]:
        return {"PEPPOL_REPORTING_SCHEDULE": "false", "PEPPOL_HTTP_RATE_LIMIT": "10000000"}

    async def start_ap_a(self, *, validate_on_submit: bool, processes: int = 2) -> None:
        """(Re)start AP-A, validating on submission with a pool of ``processes`` or not at all."""
        await self.stop_ap_a()
        env = {
            **_env(self.pki.directory, "ap1", self.dsn_a, self.port_a, self.knot, self.ap_a_workers),
            **self._quiet(),
            "PEPPOL_VALIDATION_ON_SUBMIT": "true" if validate_on_submit else "false",
            "PEPPOL_VALIDATION_PROCESSES": str(processes),
        }
        self.ap_a = await asyncio.to_thread(_start, env)

    async def stop_ap_a(self) -> None:
        if self.ap_a is not None:
            self.ap_a.terminate()
            await asyncio.to_thread(self.ap_a.wait, 30)
            self.ap_a = None

    def groups(self) -> list[procs.Group]:
        assert self.ap_a is not None and self.ap_b is not None
        return [
            *procs.gateway_groups("AP-A", self.ap_a.pid),
            *procs.gateway_groups("AP-B", self.ap_b.pid),
            procs.postgres_group(self.postgres.data),
        ]

    @property
    def url_a(self) -> str:
        return f"http://127.0.0.1:{self.port_a}"

    async def stop(self) -> None:
        for pool in (getattr(self, "pool_a", None), getattr(self, "pool_b", None)):
            if pool is not None:
                await pool.close()
        await self.stop_ap_a()
        if self.ap_b is not None:
            self.ap_b.terminate()
            await asyncio.to_thread(self.ap_b.wait, 30)
        if hasattr(self, "knot"):
            self.knot.stop()
        if hasattr(self, "postgres"):
            await asyncio.to_thread(self.postgres.stop)


async def rest_submitter(session: aiohttp.ClientSession, net: Network, invoice: bytes, run: str) -> Submit:
    """POST /v1/invoices on AP-A as the sending company (a token first)."""
    form = {"grant_type": "client_credentials", "client_id": net.client_id, "client_secret": net.secret}
    async with session.post(f"{net.url_a}/oauth2/token", data=form) as r:
        answer = await r.json()
        if r.status != 200:
            raise RuntimeError(f"AP-A refused a token: {r.status} {answer}")
    headers = {"Authorization": f"Bearer {answer['access_token']}", "Content-Type": "application/xml"}

    async def submit(i: int) -> tuple[str, int]:
        body = numbered(invoice, f"{run}-{i}")
        async with session.post(f"{net.url_a}/v1/invoices", data=body, headers=headers) as r:
            answer = await r.json()
            if r.status != 202:
                raise RuntimeError(f"AP-A answered {r.status}: {answer}")
        data = answer["data"] if "data" in answer else answer
        return str(data["as4_message_id"]), int(str(data["id"]).lstrip("s"))

    return submit


def direct_submitter(net: Network, invoice: bytes, run: str) -> Submit:
    """Queue from this process, as the API would (derived here, so AP-A only sends)."""

    async def submit(i: int) -> tuple[str, int]:
        derived = derive_submission(numbered(invoice, f"{run}-{i}"))
        job = await submit_document(net.pool_a, derived, retry_window=600)
        message_id = await net.pool_a.fetchval("SELECT as4_message_id FROM outbound_messages WHERE id = $1", job)
        return str(message_id), job

    return submit


@dataclass
class Burst:
    count: int
    seconds: float  # first submission to the last mailbox commit
    latencies: list[float]  # ms, submission to mailbox (AP-B's received_at)
    cpu: dict[str, float]  # seconds per group, first submission to the last receipt on AP-A
    client: float  # this process's CPU seconds

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def per_doc(self, *names: str) -> float:
        """CPU ms per document of the named groups (all of them without names)."""
        return sum(v for k, v in self.cpu.items() if not names or k in names) / self.count * 1000


async def _wait_mailbox(net: Network, start_id: int, count: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while await net.pool_b.fetchval("SELECT count(*) FROM inbound_messages WHERE id > $1", start_id) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not all of {count} documents reached AP-B's mailbox in {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def _wait_delivered(net: Network, jobs: list[int], timeout: float = 120) -> None:
    """Until AP-A has every receipt (its last work for a document)."""
    deadline = time.monotonic() + timeout
    query = "SELECT count(*) FROM outbound_messages WHERE id BETWEEN $1 AND $2 AND state = $3"
    while await net.pool_a.fetchval(query, min(jobs), max(jobs), OutboundState.DELIVERED.value) < len(jobs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"AP-A did not mark all of {len(jobs)} documents delivered in {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def burst(net: Network, submit: Submit, count: int, first: int = 0) -> Burst:
    """Submit ``count`` documents at once (the HTTP client keeps up to 100 requests open)."""
    start_id = await net.pool_b.fetchval("SELECT coalesce(max(id), 0) FROM inbound_messages")
    groups = net.groups()
    cpu_before, client_before = procs.cpu_by_group(groups), client_cpu()
    started = time.time()
    submitted: dict[str, float] = {}
    jobs: list[int] = []

    async def one(i: int) -> None:
        at = time.time()
        message_id, job = await submit(first + i)
        submitted[message_id] = at
        jobs.append(job)

    await asyncio.gather(*(one(i) for i in range(count)))
    await _wait_mailbox(net, start_id, count)
    await _wait_delivered(net, jobs)
    cpu = procs.cpu_delta(cpu_before, procs.cpu_by_group(groups))
    client = client_cpu() - client_before
    rows = await net.pool_b.fetch(
        "SELECT as4_message_id, extract(epoch FROM received_at) AS at FROM inbound_messages WHERE id > $1",
        start_id,
    )
    last = max(float(r["at"]) for r in rows)
    latencies = [
        (float(r["at"]) - submitted[r["as4_message_id"]]) * 1000 for r in rows if r["as4_message_id"] in submitted
    ]
    return Burst(count, last - started, latencies, cpu, client)


@dataclass
class Paced:
    rate: float
    count: int
    latencies: list[float]  # ms, scheduled submission to the mailbox commit on AP-B
    late: list[float]  # ms, how late the client sent each request after its scheduled time
    cpu: dict[str, float]


_TRIGGER = """
CREATE OR REPLACE FUNCTION bench_mailbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bench_mailbox', NEW.message_id::text);
    RETURN NEW;
END $$;
CREATE TRIGGER bench_mailbox_notify AFTER INSERT ON mailbox_entries
    FOR EACH ROW EXECUTE FUNCTION bench_mailbox_notify();
"""
_NO_TRIGGER = "DROP TRIGGER bench_mailbox_notify ON mailbox_entries; DROP FUNCTION bench_mailbox_notify();"


async def paced(net: Network, submit: Submit, rate: float, seconds: float, first: int = 0) -> Paced:
    """Submit at ``rate`` per second on a fixed schedule (never waiting for an answer first)."""
    count = max(1, int(rate * seconds))
    listener = await asyncpg.connect(net.dsn_b)
    committed: dict[int, float] = {}
    await listener.execute(_TRIGGER)
    await listener.add_listener(
        "bench_mailbox", lambda _c, _p, _ch, payload: committed.setdefault(int(payload), time.perf_counter())
    )  # type: ignore[arg-type]
    try:
        groups = net.groups()
        cpu_before = procs.cpu_by_group(groups)
        scheduled: dict[str, float] = {}
        late: list[float] = []
        jobs: list[int] = []
        begin = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            due = begin + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            late.append((time.perf_counter() - due) * 1000)
            message_id, job = await submit(first + i)
            scheduled[message_id] = due
            jobs.append(job)

        await asyncio.gather(*(one(i) for i in range(count)))
        deadline = time.monotonic() + 300
        while len(committed) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await _wait_delivered(net, jobs)
        cpu = procs.cpu_delta(cpu_before, procs.cpu_by_group(groups))
        rows = await net.pool_b.fetch(
            "SELECT id, as4_message_id FROM inbound_messages WHERE id = ANY($1::bigint[])", list(committed)
        )
        latencies = [
            (committed[r["id"]] - scheduled[r["as4_message_id"]]) * 1000
            for r in rows
            if r["as4_message_id"] in scheduled
        ]
    finally:
        await listener.execute(_NO_TRIGGER)
        await listener.close()
    return Paced(rate, count, latencies, late, cpu)


def _split(b: Burst) -> str:
    """Each group's CPU per document; a gateway's validation workers only when they ran."""
    return " + ".join(f"{name} {b.per_doc(name):.2f}" for name in b.cpu if b.cpu[name] > 0 or "workers" not in name)


async def _run(tmp: Path, count: int, paced_seconds: float, validated: int, mode: str) -> list[Figure]:
    net = Network(tmp)
    figures: list[Figure] = []
    try:
        await net.start(validate_on_submit=False)
        invoice = bench_invoice()
        print(
            f"  document: {len(bench_document().sbd)} bytes in its envelope; submitted {'over AP-A REST API' if mode == 'rest' else 'from the bench process'}"
        )
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            make = (lambda run: rest_submitter(session, net, invoice, run)) if mode == "rest" else None

            async def submitter(run: str) -> Submit:
                return await make(run) if make is not None else direct_submitter(net, invoice, run)

            await burst(net, await submitter("warm"), 100)  # discovery cache, connections, code paths
            profile_dir = os.environ.get("BENCH_PROFILE")
            spies = []
            if profile_dir and net.ap_a and net.ap_b:  # py-spy flame data of both gateways during the burst
                for name, pid in (("ap-b", net.ap_b.pid), ("ap-a", net.ap_a.pid)):
                    spies.append(subprocess.Popen(
                        ["py-spy", "record", "--format", "raw", "-r", "200", "-o", f"{profile_dir}/{name}.txt", "-p", str(pid)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    ))  # fmt: skip
                await asyncio.sleep(1)
            size_query = "SELECT pg_database_size(current_database())"
            size_before = await net.pool_a.fetchval(size_query) + await net.pool_b.fetchval(size_query)
            b = await burst(net, await submitter("burst"), count)
            for spy in spies:
                spy.send_signal(2)
                spy.wait(timeout=30)
            print(
                f"  burst of {count}: {b.rate:.1f} documents/s, latency p50 {pct(b.latencies, 0.5):.1f} ms "
                f"p99 {pct(b.latencies, 0.99):.1f} ms"
            )
            print(
                f"  CPU per document, all processes: {b.per_doc():.2f} ms = {_split(b)} "
                f"(bench client {b.client / count * 1000:.2f}, not counted)"
            )
            await net.pool_a.execute("CHECKPOINT")
            size_after = await net.pool_a.fetchval(size_query) + await net.pool_b.fetchval(size_query)
            print(
                f"  database growth per document (sender + receiver, all evidence kept): "
                f"{(size_after - size_before) / count / 1024:.1f} KiB"
            )
            figures += [
                Figure("e2e.cpu_per_doc", value=b.per_doc(), note=f"burst of {count}; bench client not counted"),
                Figure("e2e.cpu_ap_a", value=b.per_doc("AP-A", "AP-A validation workers")),
                Figure("e2e.cpu_ap_b", value=b.per_doc("AP-B", "AP-B validation workers")),
                Figure("e2e.cpu_postgres", value=b.per_doc("PostgreSQL")),
                Figure("e2e.burst_rate", value=b.rate, note=f"{count} submitted at once, to the last mailbox commit"),
            ]
            if os.environ.get("BENCH_BURST_ONLY") == "1":  # the burst's figures only, for profiling
                return figures
            half = max(1.0, b.rate / 2)
            p = await paced(net, await submitter("paced"), half, paced_seconds)
            cpu = sum(p.cpu.values()) / p.count * 1000
            print(
                f"  paced at {half:.0f} documents/s for {paced_seconds:.0f} s ({p.count}): latency to the mailbox commit "
                f"p50 {pct(p.latencies, 0.5):.1f} ms p99 {pct(p.latencies, 0.99):.1f} ms max {max(p.latencies):.1f} ms; "
                f"CPU per document {cpu:.2f} ms; the client sent p99 {pct(p.late, 0.99):.1f} ms late"
            )
            note = f"paced at {half:.0f}/s for {paced_seconds:.0f} s, {len(p.latencies)} documents"
            figures += [
                Figure("e2e.paced_p50", value=pct(p.latencies, 0.5), note=note),
                Figure("e2e.paced_p99", value=pct(p.latencies, 0.99), note=note),
            ]
            if validated <= 0:
                return figures
            if mode != "rest":
                figures.append(Figure("e2e.validated_rate", missing="--submit direct: validation is the API's"))
                return figures
            await net.start_ap_a(validate_on_submit=True, processes=2)
            await burst(net, await submitter("vwarm"), 24)  # every worker compiles its stylesheets first
            v = await burst(net, await submitter("validated"), validated)
            print(
                f"  burst of {validated} validated on submission (UBL XSD + EN 16931 + Peppol, AP-A's pool of 2): "
                f"{v.rate:.1f} documents/s, latency p50 {pct(v.latencies, 0.5):.1f} ms p99 {pct(v.latencies, 0.99):.1f} ms"
            )
            print(f"  CPU per validated document: {v.per_doc():.2f} ms = {_split(v)}")
            figures += [
                Figure("e2e.validated_rate", value=v.rate, note=f"burst of {validated}; AP-A's validation pool of 2"),
                Figure("e2e.validated_cpu", value=v.per_doc(), note=_split(v)),
            ]
    finally:
        await net.stop()
    return figures


def main(count: int = 1000, paced_seconds: float = 15.0, validated: int = 400, mode: str = "rest") -> list[Figure]:
    print("End to end: AP-A REST submission -> AS4 -> AP-B mailbox committed (two gateway processes, loopback)")
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_run(Path(tmp), count, paced_seconds, validated, mode))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("count", nargs="?", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=int, default=1000, help="documents in the measured burst")
    parser.add_argument("--paced-seconds", type=float, default=15.0, help="length of the paced run")
    parser.add_argument("--validated", type=int, default=400, help="documents in the validated burst (0: none)")
    parser.add_argument("--submit", choices=("rest", "direct"), default="rest")
    args = parser.parse_args()
    from gateway.core.logs import configure_logging

    configure_logging("console", "warning")
    main(args.count or args.docs, args.paced_seconds, args.validated, args.submit)
