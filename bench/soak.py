"""Soak test of the whole system as an ERP uses it: nothing lost, nothing twice.

A two-access-point network like the sandbox's (one embedded PostgreSQL with a database per
access point, Knot DNS as the SML, the dev PKI, two ``python -m gateway.cli --config X serve``
processes AP-A and AP-B). Several concurrent clients submit invoices with unique numbers to
AP-A's REST API, each with its own ``Idempotency-Key``, retrying a failed request with the same
key and body until it is answered, and now and then resubmitting an answered one (an ERP that
missed the answer). Meanwhile the gateways are SIGKILLed and restarted on the same port and
configuration, and PostgreSQL is stopped in immediate mode and started again. A webhook of AP-B's
receiving company points at a receiver in this process that checks signatures and answers 500
to a fraction of the deliveries at first.

After a settle period without faults it checks, through the two APIs: every document delivered
exactly once (the sender's status on AP-A, the receiver's mailbox on AP-B matched by invoice
number), none stuck in a non-final state, every ``document.received`` event delivered with a
valid signature, and no process left behind by a killed gateway. One JSON summary goes to
stdout (with the resident memory of each gateway, its validation workers and PostgreSQL, sampled
every 5 s: the highest and the last), progress to stderr; the exit status is 0 only when all of
that holds.

    python -m bench.soak --docs 10000 --kills-a 20 --kills-b 20 --pg-restarts 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import structlog
from aiohttp import web
from lxml import etree

import smp
from bench import procs
from gateway.core.migrate import apply_migrations
from gateway.dev.dns import KnotDns
from gateway.dev.pki import create_dev_pki
from gateway.dev.postgres import EmbeddedPostgres
from gateway.dev.sandbox import COMPANIES, DemoCompany, demo_services
from gateway.directory import queries as directory_queries
from gateway.security.credentials import create_api_key
from gateway.webhooks.delivery import verify_signature

ROOT = Path(__file__).resolve().parent.parent
ZONE = "sml.soak.test"
SENDER = next(c for c in COMPANIES if c.access_point == "AP-A" and "INVOICE_AND_CREDIT_NOTE" in c.profiles)
RECEIVER = next(c for c in COMPANIES if c.access_point == "AP-B" and "INVOICE_AND_CREDIT_NOTE" in c.profiles)
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
FINAL_SENT = {"delivered", "accepted", "rejected", "failed"}
DELIVERED_SENT = {"delivered", "accepted", "rejected"}


def say(message: str, **fields: object) -> None:
    """Progress on stderr: stdout carries only the JSON summary."""
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"[soak {time.strftime('%H:%M:%S')}] {message} {extra}".rstrip(), file=sys.stderr, flush=True)


# -- options -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    docs: int
    kills_a: int
    kills_b: int
    pg_restarts: int
    clients: int
    seed: int
    resubmit_fraction: float
    webhook_fail_fraction: float
    settle_timeout: float
    keep: bool


def parse_options(argv: list[str] | None = None) -> Options:
    env = os.environ.get

    def number(name: str, default: str) -> str:
        return env(f"SOAK_{name.upper()}", default)

    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=int(number("docs", "10000")), help="documents to submit")
    parser.add_argument("--kills-a", type=int, default=int(number("kills_a", "20")), help="SIGKILLs of AP-A")
    parser.add_argument("--kills-b", type=int, default=int(number("kills_b", "20")), help="SIGKILLs of AP-B")
    parser.add_argument("--pg-restarts", type=int, default=int(number("pg_restarts", "2")))
    parser.add_argument("--clients", type=int, default=int(number("clients", "8")), help="concurrent ERP clients")
    parser.add_argument("--seed", type=int, default=int(number("seed", str(random.randrange(1 << 30)))))
    parser.add_argument("--resubmit-fraction", type=float, default=0.05, help="answered documents sent again")
    parser.add_argument("--webhook-fail-fraction", type=float, default=0.3, help="webhook answers 500 (faults)")
    parser.add_argument("--settle-timeout", type=float, default=600.0, help="seconds to wait for final states")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, configs)")
    a = parser.parse_args(argv)
    return Options(
        a.docs, a.kills_a, a.kills_b, a.pg_restarts, max(1, a.clients), a.seed,
        a.resubmit_fraction, a.webhook_fail_fraction, a.settle_timeout, a.keep,
    )  # fmt: skip


# -- the network -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def _toml(values: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for section, table in values.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


class Gateway:
    """One ``serve`` process, restartable on the same port and configuration."""

    def __init__(self, name: str, config: Path, port: int, log_path: Path) -> None:
        self.name = name
        self.config = config
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.crashes = 0  # exits nobody asked for (then restarted, as a supervisor would)
        self.down_on_purpose = False
        # settings in the environment would override the file: the soak's file must win
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PEPPOL_") and k != "DATABASE_URL"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "--config", str(self.config), "serve"],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {tail}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with session.get(f"{self.url}/v1/ping", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not come up within {timeout}s")

    def kill(self) -> None:
        """SIGKILL the main process only, as a crash or the OOM killer would: its children
        (validation pool workers) are left to fend for themselves, and must not survive it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Postgres:
    """The embedded cluster, plus a crash-like restart that keeps its port (the gateways'
    configuration names it): ``pg_ctl stop -m immediate``, then ``pg_ctl restart``, which starts
    the server with the options it last ran with (``postmaster.opts``)."""

    def __init__(self, base: Path) -> None:
        self.embedded = EmbeddedPostgres(base, durable=True)
        self.restarts = 0

    def start(self) -> str:
        return self.embedded.start()

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        e = self.embedded
        cmd = [str(e.bindir / "pg_ctl"), "-D", str(e.data), *args]
        if e.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, start_new_session=True)

    def crash(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def start_again(self) -> None:
        log = str(self.embedded.base / "pg.log")
        result = self._pg_ctl("-l", log, "-w", "-t", "60", "restart")
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start again: {result.stderr.strip()[-500:]}")
        self.restarts += 1

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.embedded.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def stop(self) -> None:
        self.embedded.stop()


@dataclass
class Company:
    company_id: str
    api_key: str
    participant: str


async def _register(conn: asyncpg.Connection, knot: KnotDns, smp_url: str, demo: DemoCompany) -> Company:
    """A verified company receiving the demo profiles, published in the SMP and the SML."""
    participant = smp.ParticipantId.parse(demo.participant)
    company_id = await directory_queries.add_company(conn, demo.name, demo.country, participant.local_id)
    await directory_queries.add_participant(
        conn, company_id, participant.scheme, participant.value, demo_services(demo)
    )
    _, api_key = await create_api_key(conn, company_id=company_id, label="soak")
    registrar = smp.LocalSml(ZONE, knot.address, smp_url, key_name=knot.key_name, key_secret=knot.secret)
    await registrar.register(participant)
    return Company(str(company_id), api_key, str(participant))


@dataclass
class Network:
    postgres: Postgres
    knot: KnotDns
    a: Gateway
    b: Gateway
    sender: Company
    receiver: Company


async def build_network(work: Path) -> Network:
    pki = create_dev_pki(work / "pki").directory
    postgres = Postgres(work / "pg")
    admin = await asyncio.to_thread(postgres.start)
    knot = KnotDns(work / "dns", ZONE)
    knot.start()
    gateways: dict[str, Gateway] = {}
    companies: dict[str, Company] = {}
    for name, stem, demo in (("AP-A", "ap1", SENDER), ("AP-B", "ap2", RECEIVER)):
        database = f"soak_{name[-1].lower()}"
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()
        dsn = _with_database(admin, database)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn)
            companies[name] = await _register(conn, knot, f"{url}/smp", demo)
        finally:
            await conn.close()
        config = work / f"{name.lower()}.toml"
        config.write_text(
            _toml(
                {
                    "database": {"url": dsn, "pool_max": 20},
                    "http": {"host": "127.0.0.1", "port": port, "public_url": url, "rate_limit": 10_000_000},
                    "log": {"format": "json", "level": "warning"},
                    "ap": {
                        "key": str(pki / f"{stem}.key.pem"),
                        "cert": str(pki / f"{stem}.cert.pem"),
                        "trust": [str(pki / "ap-ca.cert.pem")],
                        "revocation": "off",
                    },
                    "smp": {
                        "url": f"{url}/smp",
                        "key": str(pki / "smp.key.pem"),
                        "cert": str(pki / "smp.cert.pem"),
                        "trust": [str(pki / "smp-ca.cert.pem")],
                    },
                    "sml": {
                        "zone": ZONE,
                        "dns": knot.address,
                        "update_server": knot.address,
                        "update_key": f"{knot.key_name}:{knot.secret}",
                    },
                    # quick retries and short leases: a killed peer or a killed worker's jobs
                    # come back within seconds, not the production minutes
                    "workers": {
                        "outbound": 4,
                        "poll_interval": 0.2,
                        "retry_initial": 0.5,
                        "retry_max": 2,
                        "retry_window": 7200,
                        "lease_seconds": 10,
                        "circuit_cooldown": 2,
                    },
                    "reporting": {"schedule": False},
                }
            )
        )
        os.chmod(config, 0o600)
        gateways[name] = Gateway(name, config, port, work / f"{name.lower()}.log")
    return Network(postgres, knot, gateways["AP-A"], gateways["AP-B"], companies["AP-A"], companies["AP-B"])


# -- API clients -------------------------------------------------------------------------------


RETRYABLE = (aiohttp.ClientError, TimeoutError, OSError)


class Api:
    """A company's view of one access point: a bearer token, renewed when refused."""

    def __init__(self, session: aiohttp.ClientSession, base: str, company: Company) -> None:
        self.session = session
        self.base = base
        self.company = company
        self.token: str | None = None

    async def _token(self) -> str:
        while self.token is None:
            form = {"grant_type": "client_credentials", "client_id": self.company.company_id,
                    "client_secret": self.company.api_key}  # fmt: skip
            try:
                async with self.session.post(f"{self.base}/oauth2/token", data=form) as r:
                    if r.status == 200:
                        self.token = str((await r.json())["access_token"])
                        break
            except RETRYABLE:
                pass
            await asyncio.sleep(0.3)
        return self.token

    async def call(
        self, method: str, path: str, *, body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None, raw: bool = False, patience: float = 600,
    ) -> tuple[int, Any]:  # fmt: skip
        """Until answered: connection errors, timeouts, 5xx and 429 are tried again (same body,
        same headers); a refused token is renewed. Returns (status, JSON or bytes)."""
        deadline = time.monotonic() + patience
        delay = 0.2
        while True:
            all_headers = {"Authorization": f"Bearer {await self._token()}", **(headers or {})}
            kwargs: dict[str, Any] = {"headers": all_headers, "timeout": aiohttp.ClientTimeout(total=30)}
            if isinstance(body, bytes):
                all_headers["Content-Type"] = "application/xml"
                kwargs["data"] = body
            elif body is not None:
                kwargs["json"] = body
            try:
                async with self.session.request(method, self.base + path, **kwargs) as r:
                    payload = await r.read()
                    if r.status == 401:
                        self.token = None
                    elif r.status < 500 and r.status != 429:
                        return r.status, payload if raw else json.loads(payload)
            except RETRYABLE:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path} unanswered for {patience}s")
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)

    async def pages(self, path: str) -> list[dict[str, Any]]:
        """Every item of a listing, following the cursor."""
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            status, answer = await self.call("GET", f"{path}&limit=500{cursor}")
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {answer}")
            items += answer["data"]["items"]
            if not answer["data"]["next_cursor"]:
                return items
            cursor = f"&cursor={answer['data']['next_cursor']}"


def invoice_bytes(template: bytes, number: str) -> bytes:
    """The example invoice under another number (its first cbc:ID is the invoice's own)."""
    return re.sub(rb"<cbc:ID>[^<]*</cbc:ID>", f"<cbc:ID>{number}</cbc:ID>".encode(), template, count=1)


def invoice_number(document: bytes) -> str | None:
    root = etree.fromstring(document)
    found = root.find(f"{{{CBC}}}ID")
    return found.text if found is not None else None


@dataclass
class Submissions:
    """What the ERP knows: the answer to each of its documents."""

    answered: dict[str, str] = field(default_factory=dict)  # invoice number -> sent id (s<n>)
    refused: dict[str, str] = field(default_factory=dict)  # invoice number -> the 4xx answer
    resubmitted: int = 0
    resubmit_mismatch: int = 0  # the same key answered with another document id
    retries: int = 0
    finished_at: float = 0.0


async def submit_all(api: Api, opts: Options, run: str, rng: random.Random, out: Submissions) -> None:
    template = (ROOT / "examples" / "invoice.xml").read_bytes()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(opts.docs):
        queue.put_nowait(n)

    async def post(number: str, key: str, body: bytes) -> tuple[int, Any]:
        status, answer = await api.call("POST", "/v1/invoices", body=body, headers={"Idempotency-Key": key})
        return status, answer

    async def client() -> None:
        while True:
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            number = f"SOAK-{run}-{n:06d}"
            key = f"soak-{run}-{n}"
            body = invoice_bytes(template, number)
            status, answer = await post(number, key, body)
            if status not in (200, 201, 202):
                out.refused[number] = f"{status} {answer}"
                continue
            out.answered[number] = answer["data"]["id"]
            if rng.random() < opts.resubmit_fraction:
                await asyncio.sleep(rng.random())
                _, again = await post(number, key, body)
                out.resubmitted += 1
                if not isinstance(again, dict) or again.get("data", {}).get("id") != out.answered[number]:
                    out.resubmit_mismatch += 1
                    say("resubmission answered differently", invoice=number, first=out.answered[number],
                        again=json.dumps(again)[:200])  # fmt: skip

    await asyncio.gather(*(client() for _ in range(opts.clients)))
    out.finished_at = time.time()


# -- webhook receiver --------------------------------------------------------------------------


@dataclass
class Hooks:
    secret: str = ""
    fail_fraction: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    delivered: dict[str, str] = field(default_factory=dict)  # event id -> as4 message id
    seen: set[str] = field(default_factory=set)  # event ids offered at least once, even if refused
    attempts: int = 0
    refused_500: int = 0
    bad_signature: int = 0

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        if not verify_signature(self.secret, body, request.headers.get("X-Gateway-Signature", "")):
            self.bad_signature += 1
            return web.Response(status=401)
        self.seen.add(request.headers.get("X-Gateway-Event-Id", ""))
        if self.rng.random() < self.fail_fraction:
            self.refused_500 += 1
            return web.Response(status=500)
        event = json.loads(body)
        if request.headers.get("X-Gateway-Event-Id") != event["id"]:
            self.bad_signature += 1
            return web.Response(status=400)
        if event["type"] == "document.received":
            self.delivered[event["id"]] = event["data"].get("as4_message_id", "")
        return web.Response(status=204)


async def force_webhook_retries(api: Api, hooks: Hooks, expected: set[str], timeout: float) -> int:
    """Deliveries that failed wait an hour before the next try; ask for them now through
    ``POST /v1/webhook_deliveries/{id}/retry`` until every expected event got through."""
    forced = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = 0
        for status in ("failed", "pending"):
            _, answer = await api.call("GET", f"/v1/webhook_deliveries?status={status}")
            for delivery in answer["data"]:
                waiting += 1
                later = delivery["next_attempt_at"]
                due_later = later is not None and datetime.fromisoformat(later).timestamp() > time.time() + 30
                if status == "failed" or due_later:
                    await api.call("POST", f"/v1/webhook_deliveries/{delivery['id']}/retry")
                    forced += 1
        if waiting == 0 and expected <= set(hooks.delivered.values()):
            break
        if waiting == 0:  # nothing queued, yet events are missing: fan-out skipped them
            await asyncio.sleep(2)
            _, answer = await api.call("GET", "/v1/webhook_deliveries?status=pending")
            if not answer["data"]:
                break
        await asyncio.sleep(1)
    return forced


# -- faults ------------------------------------------------------------------------------------


@dataclass
class Faults:
    log: list[dict[str, Any]] = field(default_factory=list)
    restarts: dict[str, list[float]] = field(default_factory=lambda: {"AP-A": [], "AP-B": []})


async def inject_faults(
    net: Network, session: aiohttp.ClientSession, opts: Options, rng: random.Random,
    progress: Callable[[], int], faults: Faults,
) -> None:  # fmt: skip
    """SIGKILL the gateways and crash PostgreSQL at random points of the progress (submission
    and arrival together), one fault at a time; each victim comes back after a short random
    pause. Progress that stalls for 20 s does not hold the next fault back."""
    plan = ["AP-A"] * opts.kills_a + ["AP-B"] * opts.kills_b + ["PG"] * opts.pg_restarts
    points = sorted(rng.uniform(0.03, 0.9) * opts.docs for _ in plan)
    rng.shuffle(plan)
    gateways = {"AP-A": net.a, "AP-B": net.b}
    for point, victim in zip(points, plan, strict=True):
        last, since = progress(), time.monotonic()
        while progress() < point and time.monotonic() - since < 20:
            await asyncio.sleep(0.1)
            if progress() != last:
                last, since = progress(), time.monotonic()
        pause = rng.uniform(0.2, 2.0) if victim != "PG" else rng.uniform(0.5, 3.0)
        at = time.time()
        if victim == "PG":
            await asyncio.to_thread(net.postgres.crash)
            await asyncio.sleep(pause)
            await asyncio.to_thread(net.postgres.start_again)
        else:
            gateway = gateways[victim]
            gateway.down_on_purpose = True
            gateway.kill()
            await asyncio.sleep(pause)
            faults.restarts[victim].append(time.time())
            gateway.launch()
            gateway.down_on_purpose = False
            await gateway.wait_ready(session)
        faults.log.append({"victim": victim, "at": at, "down_s": round(time.time() - at, 2), "progress": progress()})
        say("fault", victim=victim, progress=progress(), down_s=round(time.time() - at, 2))
        await asyncio.sleep(rng.uniform(0.5, 3.0))  # let the system make some progress


async def supervise(gateways: list[Gateway], session: aiohttp.ClientSession) -> None:
    """Restart a gateway that exited by itself (e.g. on losing its database), as systemd or
    Kubernetes would; each such exit is counted."""
    while True:
        await asyncio.sleep(0.5)
        for gateway in gateways:
            proc = gateway.proc
            if gateway.down_on_purpose or proc is None or proc.poll() is None:
                continue
            gateway.crashes += 1
            say("gateway exited by itself; restarting", name=gateway.name, status=proc.returncode)
            await asyncio.sleep(1)
            gateway.launch()
            with contextlib.suppress(RuntimeError):
                await gateway.wait_ready(session)


# -- orphans -----------------------------------------------------------------------------------


def orphans(exclude: set[int]) -> list[tuple[int, str]]:
    """Processes of this tree's interpreter adopted by init: left behind by a killed parent."""
    marker = f"{ROOT}/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if marker in cmdline and ppid == "1" and "State:\tZ" not in status:
            found.append((int(entry.name), cmdline.strip()))
    return found


# -- checks ------------------------------------------------------------------------------------


def _spread(values: list[float]) -> dict[str, float | int | None]:
    """Median, maximum and count of a few seconds' figures."""
    if not values:
        return {"p50": None, "max": None, "count": 0}
    return {"p50": round(statistics.median(values), 2), "max": round(max(values), 2), "count": len(values)}


async def _numbers_of(api: Api, base: str, ids: list[str], concurrency: int = 8) -> dict[str, str | None]:
    """The invoice number inside each document (downloaded: the listing has no number)."""
    found: dict[str, str | None] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(doc_id: str) -> None:
        async with gate:
            status, content = await api.call("GET", f"{base}/{doc_id}/document", raw=True)
        found[doc_id] = invoice_number(content) if status == 200 else None

    await asyncio.gather(*(one(i) for i in ids))
    return found


async def wait_settled(api_a: Api, answered: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """AP-A's sent documents once all of ours are final (or the time is up)."""
    ours = set(answered.values())
    deadline = time.monotonic() + timeout
    while True:
        sent = await api_a.pages("/v1/invoices?direction=SENT")
        open_ = [s for s in sent if s["id"] in ours and s["status"] not in FINAL_SENT]
        if not open_ or time.monotonic() > deadline:
            return sent
        say("settling", not_final=len(open_))
        await asyncio.sleep(3)


async def wait_mailbox(api_b: Api, expected: int, timeout: float) -> list[dict[str, Any]]:
    """AP-B's mailbox once it holds ``expected`` entries or stops growing."""
    deadline = time.monotonic() + timeout
    last, stable = -1, 0
    while True:
        box = await api_b.pages("/v1/invoices?direction=RECEIVED")
        stable = stable + 1 if len(box) == last else 0
        last = len(box)
        if len(box) >= expected or stable >= 5 or time.monotonic() > deadline:
            return box
        await asyncio.sleep(2)


# -- memory ------------------------------------------------------------------------------------


def _alive(gateway: Gateway) -> list[int]:
    proc = gateway.proc
    return [proc.pid] if proc is not None and proc.poll() is None else []


def memory_groups(net: Network) -> list[procs.Group]:
    """Each gateway as it runs now (a restart is a new process), its validation workers, and the
    cluster (PSS of all its processes)."""
    groups = []
    for g in (net.a, net.b):
        groups.append(procs.Group(g.name, lambda: 0.0, lambda g=g: _alive(g)))  # type: ignore[misc]
        groups.append(
            procs.Group(
                f"{g.name} validation workers", lambda: 0.0,
                lambda g=g: [w for pid in _alive(g) for w in procs.validation_workers(pid)],  # type: ignore[misc]
            )
        )  # fmt: skip
    data = net.postgres.embedded.data
    groups.append(procs.Group("PostgreSQL", lambda: 0.0, lambda: procs.cluster_pids(data), proportional=True))
    return groups


@dataclass
class MemoryWatch:
    """RSS (MB) of every process group every few seconds: the highest seen and the last."""

    peak: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    async def run(self, groups: list[procs.Group], every: float = 5.0) -> None:
        while True:
            sample = await asyncio.to_thread(procs.memory_sample, groups)
            self.last = sample.mb
            for name, mb in sample.mb.items():
                self.peak[name] = max(self.peak.get(name, 0.0), mb)
            await asyncio.sleep(every)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            "peak": {k: round(v, 1) for k, v in self.peak.items()},
            "last": {k: round(v, 1) for k, v in self.last.items()},
        }


# -- the run -----------------------------------------------------------------------------------


async def soak(opts: Options, work: Path) -> dict[str, Any]:
    rng = random.Random(opts.seed)
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    started = time.time()
    before = {pid for pid, _ in orphans(set())}
    say("building the network", work=str(work), seed=opts.seed)
    net = await build_network(work)
    hooks = Hooks(rng=random.Random(opts.seed + 1))
    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hooks.receive)
    runner = web.AppRunner(receiver_app, access_log=None)
    await runner.setup()
    hook_port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    connector = aiohttp.TCPConnector(limit=64)
    session = aiohttp.ClientSession(connector=connector)
    subs = Submissions()
    faults = Faults()
    try:
        net.b.launch()
        net.a.launch()
        await asyncio.gather(net.b.wait_ready(session), net.a.wait_ready(session))
        api_a = Api(session, net.a.url, net.sender)
        api_b = Api(session, net.b.url, net.receiver)
        status, answer = await api_b.call(
            "POST", "/v1/company/notifications",
            body={"destination_type": "WEBHOOK", "destination": f"http://127.0.0.1:{hook_port}/hook",
                  "events": ["document.received"]},
        )  # fmt: skip
        if status != 201:
            raise RuntimeError(f"webhook registration refused: {status} {answer}")
        hooks.secret = answer["data"]["secret"]
        hooks.fail_fraction = opts.webhook_fail_fraction
        say("network up; submitting", docs=opts.docs, clients=opts.clients, kills_a=opts.kills_a,
            kills_b=opts.kills_b, pg_restarts=opts.pg_restarts)  # fmt: skip

        def progress() -> int:
            """Documents answered and documents arrived (their event offered), halved: faults
            land while submitting and while delivering, however fast either is."""
            return (len(subs.answered) + len(subs.refused) + len(hooks.seen)) // 2

        async def report_progress() -> None:
            while True:
                await asyncio.sleep(10)
                say("progress", answered=len(subs.answered), refused=len(subs.refused),
                    webhook_events=len(hooks.delivered))  # fmt: skip

        reporter = asyncio.create_task(report_progress())
        supervisor = asyncio.create_task(supervise([net.a, net.b], session))
        memory = MemoryWatch()
        watcher = asyncio.create_task(memory.run(memory_groups(net)))
        submit_started = time.time()
        try:
            await asyncio.gather(
                submit_all(api_a, opts, run, rng, subs),
                inject_faults(net, session, opts, rng, progress, faults),
            )
        finally:
            reporter.cancel()
        faults_over = time.time()  # the supervisor stays on while settling
        say("submissions and faults done; settling", answered=len(subs.answered))
        hooks.fail_fraction = 0.0
        sent = await wait_settled(api_a, subs.answered, opts.settle_timeout)
        sent_by_id = {s["id"]: s for s in sent}
        ours = {sid: number for number, sid in subs.answered.items()}
        delivered_count = sum(1 for s in sent if s["status"] in DELIVERED_SENT)
        box = await wait_mailbox(api_b, delivered_count, 120)
        settled = time.time()

        # sender side: a job we were never answered with is a second job for some document
        extra_sent = [s["id"] for s in sent if s["id"] not in ours]
        extra_numbers = await _numbers_of(api_a, "/v1/invoices", extra_sent)
        sender_duplicates = sum(1 for n in extra_numbers.values() if n in subs.answered)
        # receiver side: each mailbox entry's invoice number, read from the document itself
        box_numbers = await _numbers_of(api_b, "/v1/invoices", [e["id"] for e in box])
        received = Counter(n for n in box_numbers.values() if n is not None)
        submitted_numbers = set(subs.answered) | set(subs.refused)
        duplicated = sum(c - 1 for n, c in received.items() if n in submitted_numbers and c > 1)
        lost = sorted(n for n in subs.answered if received[n] == 0)
        stuck = sorted(sid for sid in ours if sent_by_id.get(sid, {}).get("status") not in FINAL_SENT)
        failed = sorted(sid for sid in ours if sent_by_id.get(sid, {}).get("status") == "failed")
        foreign = sum(c for n, c in received.items() if n not in submitted_numbers)

        expected_events = {e["as4_message_id"] for e in box}
        forced = await force_webhook_retries(api_b, hooks, expected_events, 300)
        delivered_events = expected_events & set(hooks.delivered.values())

        supervisor.cancel()
        watcher.cancel()
        net.a.stop()
        net.b.stop()
        await asyncio.sleep(1)
        left = orphans(before | {os.getpid()})
        for pid, cmdline in left:
            say("orphan", pid=pid, cmdline=cmdline[:160])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

        delivered_at = sorted(
            datetime.fromisoformat(s["delivered_at"]).timestamp()
            for s in sent
            if s["id"] in ours and s.get("delivered_at")
        )
        recovery = {
            name: [
                first - restart
                for restart in restarts
                if (first := next((t for t in delivered_at if t >= restart), None)) is not None
            ]
            for name, restarts in faults.restarts.items()
        }
        every = recovery["AP-A"] + recovery["AP-B"]
        submit_span = max(subs.finished_at - submit_started, 1e-9)
        deliver_span = max((delivered_at[-1] if delivered_at else settled) - submit_started, 1e-9)
        summary: dict[str, Any] = {
            "ok": False,
            "seed": opts.seed,
            "submitted": len(subs.answered),
            "refused": len(subs.refused),
            "delivered": sum(1 for n in subs.answered if received[n] >= 1),
            "duplicated": duplicated,
            "lost": len(lost),
            "stuck": len(stuck),
            "failed": len(failed),
            "sender_duplicate_jobs": sender_duplicates,
            "resubmitted": subs.resubmitted,
            "resubmit_mismatch": subs.resubmit_mismatch,
            "foreign_received": foreign,
            "kills": {"AP-A": net.a.kills, "AP-B": net.b.kills},
            "unexpected_exits": {"AP-A": net.a.crashes, "AP-B": net.b.crashes},
            "pg_restarts": net.postgres.restarts,
            "webhook_events_expected": len(expected_events),
            "webhook_events_delivered": len(delivered_events),
            "webhook_bad_signature": hooks.bad_signature,
            "webhook_attempts": hooks.attempts,
            "webhook_refused_500": hooks.refused_500,
            "webhook_retries_forced": forced,
            "orphans": len(left),
            "throughput_docs_per_s": {
                "submitted": round(len(subs.answered) / submit_span, 2),
                "delivered": round(len(delivered_at) / deliver_span, 2),
            },
            "recovery_s": {**_spread(every), "per_ap": {k: _spread(v) for k, v in recovery.items()}},
            "settle_s": round(settled - faults_over, 1),
            "rss_mb": memory.summary(),
            "duration_s": round(time.time() - started, 1),
            "examples": {
                "lost": lost[:5],
                "duplicated": [n for n, c in received.items() if c > 1][:5],
                "stuck": stuck[:5],
                "missing_events": sorted(expected_events - delivered_events)[:5],
                "refused": list(subs.refused.items())[:3],
            },
        }
        summary["ok"] = (
            duplicated == len(lost) == len(stuck) == len(left) == 0
            and not subs.refused
            and len(delivered_events) == len(expected_events)
            and hooks.bad_signature == 0
            and subs.resubmit_mismatch == 0
            and sender_duplicates == 0
        )
        return summary
    finally:
        await session.close()
        await runner.cleanup()
        net.a.stop()
        net.b.stop()
        net.knot.stop()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(net.postgres.stop)


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    # the embedded database's and DNS server's log lines are progress too: stdout is the summary's
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="peppol-soak-"))
    os.chmod(work, 0o755)  # as root, the postgres user must reach its cluster here
    try:
        summary = asyncio.run(soak(opts, work))
    finally:
        if opts.keep:
            say("work folder kept", work=str(work))
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
