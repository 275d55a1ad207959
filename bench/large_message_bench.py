"""A large, barely compressible message end to end: an SBD embedding a random binary document
(base64) is built into an AS4 message (streamed to a spool file), sent over HTTP, received by
the gateway's AS4 endpoint and stored in PostgreSQL. Sender and receiver run in their own
processes; each reports its peak RSS growth (VmHWM, reset with clear_refs) and its time."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).parent.parent
RECEIVER = ("0192", "991825827")
DOCTYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017"
    "#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
MARK = b"@@BLOB@@"


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_kb() -> int:
    """Reset the kernel's peak-RSS mark and return the current RSS."""
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def write_payload(path: Path, size: int) -> bytes:
    """Write an SBD of about ``size`` bytes whose invoice embeds random bytes in base64, in
    chunks; returns its SHA-256."""
    from gateway.documents.envelope import build_sbd

    invoice = (ROOT / "tests" / "support" / "data" / "invoice-bis3.xml").read_bytes()
    attachment = (
        b"<cac:AdditionalDocumentReference><cbc:ID>att-1</cbc:ID><cac:Attachment>"
        b'<cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="scan.pdf">'
        + MARK
        + b"</cbc:EmbeddedDocumentBinaryObject></cac:Attachment></cac:AdditionalDocumentReference>"
    )
    document = invoice.replace(b"<cac:AccountingSupplierParty>", attachment + b"<cac:AccountingSupplierParty>", 1)
    sbd = build_sbd(
        document, sender="0007:2120000787", receiver=":".join(RECEIVER),
        document_type=DOCTYPE, process=PROCESS, country_c1="SE",
    )  # fmt: skip
    head, tail = sbd.split(MARK)
    digest = hashlib.sha256()
    left = max(0, size - len(head) - len(tail))
    with path.open("wb") as f:
        for part in (head,):
            f.write(part)
            digest.update(part)
        while left > 0:
            chunk = base64.b64encode(os.urandom(min(left, 1 << 20) * 3 // 4 or 3))[:left]
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
        f.write(tail)
        digest.update(tail)
    return digest.digest()


def sender_main(pki_dir: str, url: str, payload_path: str) -> None:
    """Build the AS4 message from the payload file into a spool file and send it."""
    import aiohttp

    import as4
    from gateway.dev.pki import load_dev_pki

    pki = load_dev_pki(Path(pki_dir))
    a, b = pki.access_points["ap1"], pki.access_points["ap2"]
    header = as4.UserMessageHeader(
        message_id=as4.new_message_id("bench"), conversation_id="large", timestamp=datetime.now(UTC),
        from_party=as4.seat_id(a.cert), to_party=as4.seat_id(b.cert), service=PROCESS,
        action="busdox-docid-qns::" + DOCTYPE, original_sender="0007:2120000787",
        final_recipient=":".join(RECEIVER),
    )  # fmt: skip

    async def send() -> dict[str, Any]:
        base = reset_peak_kb()
        start = time.perf_counter()
        writer = as4.MessageWriter(header, signing_key=a.key, signing_cert=a.cert, receiver_cert=b.cert)
        with tempfile.TemporaryFile() as spool:
            with open(payload_path, "rb") as payload:
                while chunk := payload.read(1 << 20):
                    spool.write(writer.feed(chunk))
            last, frame = writer.finish()
            spool.write(last)
            built = time.perf_counter()
            async with aiohttp.ClientSession() as session:
                receipt = await as4.send_message(
                    session, url, frame, receiver_cert=b.cert, attachment=spool, timeout=600
                )
        done = time.perf_counter()
        return {
            "receipt": receipt.message_id, "wire": frame.size, "build_s": built - start,
            "send_s": done - built, "rss_growth_mb": (_status_kb("VmHWM") - base) / 1024,
        }  # fmt: skip

    print(json.dumps(asyncio.run(send())))


def receiver_main(pki_dir: str, dsn: str, port: int, messages: int = 1) -> None:
    """Serve the gateway's AS4 endpoint until ``messages`` requests were answered, then report."""
    from aiohttp import web

    from gateway.dev.pki import load_dev_pki
    from gateway.inbound.endpoint import InboundEndpoint
    from gateway.security.identity import ApIdentity
    from gateway.security.trust import CertificateTrust

    pki = load_dev_pki(Path(pki_dir))
    b = pki.access_points["ap2"]

    async def serve() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        endpoint = InboundEndpoint(
            pool, ApIdentity(b.key, b.cert), CertificateTrust([pki.ap_ca.cert], policy="off"),
            max_message_bytes=int(os.environ.get("BENCH_MAX_MESSAGE", str(110 * 1024 * 1024))),
            max_payload_bytes=200 * 1024 * 1024,
        )  # fmt: skip
        done = asyncio.Event()
        figures: dict[str, Any] = {}

        async def handle(request: web.Request) -> web.Response:
            start = time.perf_counter()
            response = await endpoint.handle(request)
            figures["receive_s"] = time.perf_counter() - start
            figures["status"] = response.status
            figures["answered"] = figures.get("answered", 0) + 1
            if figures["answered"] >= messages:
                done.set()
            return response

        app = web.Application()
        app.router.add_post("/as4", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = reset_peak_kb()
        print("ready", flush=True)
        await done.wait()
        figures["rss_growth_mb"] = (_status_kb("VmHWM") - base) / 1024
        await asyncio.sleep(0.2)  # let the answer go out
        await runner.cleanup()
        await pool.close()
        print(json.dumps(figures), flush=True)

    asyncio.run(serve())


async def prepare_database(dsn: str) -> None:
    """Migrations and a company receiving the bench document."""
    import smp
    from gateway.core.migrate import apply_migrations
    from gateway.directory import queries as directory_queries

    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        company = await directory_queries.add_company(conn, "Bench Oy", "FI", RECEIVER[1])
        services = [(str(smp.DocumentTypeId.parse("busdox-docid-qns::" + DOCTYPE)), str(smp.ProcessId.parse(PROCESS)))]
        await directory_queries.add_participant(conn, company, "iso6523-actorid-upis", ":".join(RECEIVER), services)
    finally:
        await conn.close()


def _python(code: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, text=True, stdout=subprocess.PIPE, **kwargs
    )  # fmt: skip


def run_case(pki_dir: Path, dsn: str, payload: Path, port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Receiver and sender in their own processes; their figures."""
    receiver = _python(
        f"from bench.large_message_bench import receiver_main; receiver_main({str(pki_dir)!r}, {dsn!r}, {port})"
    )
    try:
        assert receiver.stdout is not None
        if receiver.stdout.readline().strip() != "ready":
            raise RuntimeError("the receiver did not start")
        sender = _python(
            "from bench.large_message_bench import sender_main; "
            f"sender_main({str(pki_dir)!r}, 'http://127.0.0.1:{port}/as4', {str(payload)!r})"
        )
        out, _ = sender.communicate(timeout=900)
        if sender.returncode != 0:
            raise RuntimeError("the sender failed")
        received, _ = receiver.communicate(timeout=60)
        return json.loads(out.strip().splitlines()[-1]), json.loads(received.strip().splitlines()[-1])
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


async def stored_matches(dsn: str, digest: bytes) -> bool:
    """The received document is in `documents`, and its content hashes to what was sent."""
    conn = await asyncpg.connect(dsn)
    try:
        return bool(
            await conn.fetchval(
                """SELECT sha256(d.content) = $1 FROM inbound_messages m
                   JOIN documents d ON d.sha256 = m.document_sha256 WHERE m.document_sha256 = $1""",
                digest,
            )
        )
    finally:
        await conn.close()


def main(size: int = 100_000_000) -> None:
    from gateway.dev.pki import create_dev_pki
    from gateway.dev.postgres import EmbeddedPostgres
    from tests.support.gateways import free_port

    print(f"Large message, {size / 1e6:.0f} MB incompressible (sender and receiver processes)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pki = create_dev_pki(tmp / "pki")
        postgres = EmbeddedPostgres(tmp / "pg", durable=False)
        dsn = postgres.start()
        try:
            asyncio.run(prepare_database(dsn))
            payload = tmp / "payload.xml"
            digest = write_payload(payload, size)
            sent, received = run_case(pki.directory, dsn, payload, free_port())
            stored = asyncio.run(stored_matches(dsn, digest))
        finally:
            postgres.stop()
    print(
        f"  sender:   peak RSS growth {sent['rss_growth_mb']:.1f} MB; build {sent['build_s']:.2f} s, "
        f"send {sent['send_s']:.2f} s; on the wire {sent['wire'] / 1e6:.1f} MB"
    )
    print(
        f"  receiver: peak RSS growth {received['rss_growth_mb']:.1f} MB; receive+parse+store "
        f"{received['receive_s']:.2f} s; HTTP {received['status']}; stored bytes match: {stored}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000_000)
