"""Running real gateways for tests: in this process (an aiohttp server on a loopback port) or
as `peppol-gateway serve` subprocesses, each with its own database, keys and SMP, all sharing
one real DNS server as the SML."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from gateway.api.app import create_app
from gateway.api.keys import SERVICES
from gateway.core.config import Settings, load_settings
from gateway.core.database import open_pool
from gateway.core.migrate import apply_migrations
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.runtime import Runtime, Services, build_runtime
from tests.support.services import SML_ZONE, with_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_env(pki: DevPki, stem: str, dsn: str, port: int, knot: KnotDns, **extra: str) -> dict[str, str]:
    d = pki.directory
    env = {
        "DATABASE_URL": dsn,
        "PEPPOL_HTTP_HOST": "127.0.0.1",
        "PEPPOL_HTTP_PORT": str(port),
        "PEPPOL_HTTP_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PEPPOL_AP_KEY": str(d / f"{stem}.key.pem"),
        "PEPPOL_AP_CERT": str(d / f"{stem}.cert.pem"),
        "PEPPOL_AP_TRUST": str(d / "ap-ca.cert.pem"),
        "PEPPOL_SMP_KEY": str(d / "smp.key.pem"),
        "PEPPOL_SMP_CERT": str(d / "smp.cert.pem"),
        "PEPPOL_SMP_TRUST": str(d / "smp-ca.cert.pem"),
        "PEPPOL_SML_ZONE": SML_ZONE,
        "PEPPOL_SML_DNS": knot.address,
        "PEPPOL_SML_UPDATE_SERVER": knot.address,
        "PEPPOL_SML_UPDATE_KEY": f"{knot.key_name}:{knot.secret}",
        "PEPPOL_WORKERS_RETRY_INITIAL": "0.2",
        "PEPPOL_WORKERS_RETRY_MAX": "1",
        "PEPPOL_WORKERS_RETRY_WINDOW": "60",
        "PEPPOL_WORKERS_POLL_INTERVAL": "0.1",
        "PEPPOL_LOG_LEVEL": "warning",
        "PEPPOL_REPORTING_SCHEDULE": "false",
        # nothing leaves the machine: the public Peppol Directory is never asked
        "PEPPOL_DIRECTORY_SEARCH_URL": "http://127.0.0.1:9/search/1.0/json",
    }
    env.update(extra)
    return env


async def new_database(pg_dsn: str, template: str) -> str:
    name = f"gw_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    finally:
        await conn.close()
    return with_database(pg_dsn, name)


@dataclass
class InProcessGateway:
    settings: Settings
    runtime: Runtime
    services: Services
    pool: asyncpg.Pool
    url: str
    env: dict[str, str]

    @property
    def as4_url(self) -> str:
        return f"{self.url}/as4"


@asynccontextmanager
async def in_process_gateway(
    pki: DevPki,
    stem: str,
    dsn: str,
    knot: KnotDns,
    *,
    workers: bool = True,
    port: int | None = None,
    **extra: str,
) -> AsyncIterator[InProcessGateway]:
    """A gateway app served on a loopback port of this event loop, with its outbound worker."""
    port = port or free_port()
    env = gateway_env(pki, stem, dsn, port, knot, **extra)
    # The app starts its own background work; tests drive webhook delivery themselves.
    env.setdefault("PEPPOL_WORKERS_OUTBOUND", "2" if workers else "0")
    env.setdefault("PEPPOL_WORKERS_WEBHOOK", "0")
    settings = load_settings(environ=env)
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    pool = await open_pool(dsn, min_size=1, max_size=10)
    runtime = build_runtime(settings, pool)
    server = TestServer(create_app(settings, pool, runtime), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield InProcessGateway(settings, runtime, server.app[SERVICES], pool, f"http://127.0.0.1:{port}", env)
    finally:
        await server.close()
        await runtime.close()
        await pool.close()


class GatewayProcess:
    """`peppol-gateway serve` in a subprocess of its own session."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        self.port = int(env["PEPPOL_HTTP_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        import tempfile

        # stderr goes to a file: a pipe nobody reads would block a chatty gateway
        self.log = tempfile.NamedTemporaryFile(prefix="gateway-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/ping", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("gateway did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None) is not None:
            self.log.close()
            Path(self.log.name).unlink(missing_ok=True)


async def register_company(
    gw: InProcessGateway, name: str, country: str, participant: str, *profiles: str
) -> uuid.UUID:
    """A verified company receiving ``profiles``, published in the gateway's SMP and the SML."""
    import smp
    from gateway.directory import queries as directory_queries

    pid = smp.ParticipantId.parse(participant)
    services = [
        (str(doc.document_type), str(proc))
        for profile in profiles
        for doc in smp.profile_services(profile)
        for proc in doc.processes
    ]
    async with gw.pool.acquire() as conn:
        company = await directory_queries.add_company(conn, name, country, pid.local_id)
        await directory_queries.add_participant(conn, company, pid.scheme, pid.value, services)
    assert gw.runtime.registrar is not None
    await gw.runtime.registrar.register(pid)
    return company


async def wait_for_state(pool: asyncpg.Pool, job_id: int, states: set[str], timeout: float = 30) -> str:
    from gateway.outbound import queries as outbound_queries

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await outbound_queries.outbound_status(pool, job_id)
        assert status is not None
        if status.state in states:
            return status.state
        await asyncio.sleep(0.05)
    status = await outbound_queries.outbound_status(pool, job_id)
    raise AssertionError(f"job {job_id} stayed {status.state if status else '?'}: {status}")


async def send_as_peer(
    sender: InProcessGateway, receiver: InProcessGateway, derived: Any, sbd: bytes | None = None
) -> Any:
    """Send a derived document (or another envelope in its place) straight through the AS4 layer
    from ``sender``'s identity to ``receiver``, as another access point would: no queue, no
    checks of ours on the way out. Returns the built message, to send it again."""
    from datetime import UTC, datetime

    import aiohttp

    import as4

    header = as4.UserMessageHeader(
        message_id=as4.new_message_id("peer"), conversation_id="c", timestamp=datetime.now(UTC),
        from_party=sender.runtime.identity.seat_id, to_party=receiver.runtime.identity.seat_id,
        service=derived.process.value, service_type=derived.process.scheme, action=str(derived.document_type),
        original_sender=derived.sender.value, final_recipient=derived.receiver.value,
    )  # fmt: skip
    a, b = sender.runtime.identity, receiver.runtime.identity
    message = as4.build_user_message(
        header, sbd or derived.sbd, signing_key=a.key, signing_cert=a.cert, receiver_cert=b.cert
    )
    async with aiohttp.ClientSession() as session:
        await as4.send_message(session, receiver.as4_url, message, receiver_cert=b.cert)
    return message
