"""A large, barely compressible message streams through: built, sent, received and stored with
its bytes intact; a message over the size limit is refused without being read whole."""

from __future__ import annotations

import hashlib
import json
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.large_message_bench import ROOT, prepare_database, run_case, stored_matches, worker_case, write_payload
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.documents.envelope import read_sbd
from tests.support.gateways import free_port, new_database


@pytest.mark.asyncio(loop_scope="session")
async def test_20_mb_incompressible_message_is_delivered_and_stored_intact(
    pg_dsn: str, template_db: str, dev_pki: DevPki, tmp_path: Path
) -> None:
    dsn = await new_database(pg_dsn, template_db)
    await prepare_database(dsn)
    payload = tmp_path / "payload.xml"
    digest = write_payload(payload, 20_000_000)
    assert hashlib.sha256(payload.read_bytes()).digest() == digest
    sent, received = run_case(dev_pki.directory, dsn, payload, free_port())
    assert received["status"] == 200
    assert sent["receipt"]
    assert await stored_matches(dsn, digest)
    conn = await asyncpg.connect(dsn)
    try:
        size = await conn.fetchval("SELECT payload_bytes FROM inbound_messages WHERE document_sha256 = $1", digest)
    finally:
        await conn.close()
    assert size == payload.stat().st_size


@pytest.fixture
def small_limit_receiver(pg_dsn: str, dev_pki: DevPki) -> Iterator[int]:
    """The AS4 endpoint in its own process with a 1 MB message limit, for two requests."""
    port = free_port()
    code = (
        "from bench.large_message_bench import receiver_main; "
        f"receiver_main({str(dev_pki.directory)!r}, {pg_dsn!r}, {port}, messages=2)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, text=True, stdout=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "BENCH_MAX_MESSAGE": str(1024 * 1024)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port
    finally:
        proc.kill()
        proc.wait()


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while b"</env:Envelope>" not in data and b"Envelope>" not in data[-200:]:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_oversized_messages_get_the_ebms_error_before_they_are_read(small_limit_receiver: int) -> None:
    head = (
        "POST /as4 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        'Content-Type: multipart/related; type="application/soap+xml"; boundary="b"\r\n'
    )
    # A Content-Length over the limit is refused at once: nothing of the body is sent.
    with socket.create_connection(("127.0.0.1", small_limit_receiver)) as sock:
        sock.sendall((head + "Content-Length: 2147483648\r\n\r\n").encode())
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"EBMS:0004" in answer and b"larger than 1048576 bytes" in answer
    # A chunked body is cut off at the limit: the answer is there once the limit is passed,
    # while the sender is still sending.
    with socket.create_connection(("127.0.0.1", small_limit_receiver)) as sock:
        sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b"x" * 65536
        sent = 0
        sock.settimeout(10)
        while sent < 64 * 1024 * 1024:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            if select.select([sock], [], [], 0.01)[0]:
                break
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"EBMS:0004" in answer
    assert sent < 8 * 1024 * 1024  # the limit and what the sockets buffer, not the 64 MB


@pytest.mark.asyncio(loop_scope="session")
async def test_20_mb_document_goes_through_the_api_and_the_worker_to_another_gateway_intact(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns, tmp_path: Path
) -> None:
    dsn_a, dsn_b = await new_database(pg_dsn, template_db), await new_database(pg_dsn, template_db)
    payload = tmp_path / "invoice.xml"
    write_payload(payload, 20_000_000, bare=True)
    result = await worker_case(dev_pki, dsn_a, dsn_b, knot, payload, timeout=120)
    assert result["status"] == "delivered"
    sent, received = result["digests"]["sent"], result["digests"]["received"]
    assert sent is not None and received is not None
    assert sent[0] == sent[1] and received[0] == received[1]  # the stored bytes hash to their keys
    assert sent == received  # the SBD AP-B stored is the one AP-A stored
    assert result["validation"] == []  # nothing was found: the rule layers did not run
    conn = await asyncpg.connect(dsn_b)
    try:
        stored = await conn.fetchval("SELECT content FROM documents WHERE sha256 = $1", received[0])
    finally:
        await conn.close()
    original = payload.read_bytes()
    body = original[original.index(b"?>") + 2 :]
    assert body in stored  # the invoice's own bytes, copied into the envelope unchanged
    envelope, _ = read_sbd(stored)
    assert (envelope.sender, envelope.receiver, envelope.country_c1) == ("0007:2120000787", "0192:991825827", "SE")
    conn = await asyncpg.connect(dsn_a)
    try:
        row = await conn.fetchrow(
            "SELECT o.validation, d.size_bytes FROM outbound_messages o JOIN documents d"
            " ON d.sha256 = o.sent_message_sha256"
        )
    finally:
        await conn.close()
    assert row is not None and row["size_bytes"] > 20_000_000 * 0.7  # the message sent, kept as evidence
    report = json.loads(row["validation"])
    assert report["status"] == "not validated" and not report["valid"]
    assert report["layers_skipped"]["schema"].startswith("not validated: larger than 8 MB")
