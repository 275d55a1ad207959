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


def write_payload(path: Path, size: int, *, bare: bool = False) -> bytes:
    """Write an SBD of about ``size`` bytes whose invoice embeds random bytes in base64, in
    chunks (with ``bare``, the invoice alone, as an ERP submits it); returns its SHA-256."""
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
    head, tail = (document if bare else sbd).split(MARK)
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


def _peak_reset(pid: int) -> int:
    """Reset another process's peak-RSS mark; its current RSS in KB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _pid_kb(pid, "VmRSS")


def _pid_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


async def worker_case(
    pki: Any, dsn_a: str, dsn_b: str, knot: Any, payload: Path, timeout: float = 600
) -> dict[str, Any]:
    """The gateway's own outbound path: two `peppol-gateway serve` processes, the document
    submitted to AP-A's API as a raw body, delivered by AP-A's outbound worker to AP-B (found
    through the SML and AP-B's SMP). Both processes' peak RSS growth, and both sides' stored
    SBD digests."""
    import aiohttp

    import smp
    from gateway.directory import queries as directory_queries
    from gateway.security.credentials import create_api_key
    from tests.support.api import token
    from tests.support.gateways import GatewayProcess, free_port, gateway_env
    from tests.support.services import SML_ZONE

    sender = smp.ParticipantId.parse("0007:2120000787")
    receiver = smp.ParticipantId.parse(":".join(RECEIVER))
    services = [(str(smp.DocumentTypeId.parse("busdox-docid-qns::" + DOCTYPE)), str(smp.ProcessId.parse(PROCESS)))]
    port_a, port_b = free_port(), free_port()
    conn = await asyncpg.connect(dsn_b)
    try:
        company = await directory_queries.add_company(conn, "Bench Oy", "FI", RECEIVER[1])
        await directory_queries.add_participant(conn, company, receiver.scheme, receiver.value, services)
    finally:
        await conn.close()
    await smp.LocalSml(
        SML_ZONE, knot.address, f"http://127.0.0.1:{port_b}/smp", key_name=knot.key_name, key_secret=knot.secret
    ).register(receiver)
    conn = await asyncpg.connect(dsn_a)
    try:
        company = await directory_queries.add_company(conn, "Bench AB", "SE", "2120000787")
        await directory_queries.add_participant(conn, company, sender.scheme, sender.value, [])
        # Above the size limit the rule layers are not run ("not validated"); with the default
        # policy (reject) that refuses the document, so this company sends anyway.
        await conn.execute("UPDATE companies SET outbound_validation = 'warn' WHERE id = $1", company)
        _, secret = await create_api_key(conn, company_id=company)
    finally:
        await conn.close()
    env_b = gateway_env(pki, "ap2", dsn_b, port_b, knot, PEPPOL_WORKERS_OUTBOUND="0")
    env_a = gateway_env(pki, "ap1", dsn_a, port_a, knot, PEPPOL_WORKERS_OUTBOUND="1")
    b, a = GatewayProcess(env_b), GatewayProcess(env_a)
    try:
        await asyncio.to_thread(b.start)
        await asyncio.to_thread(a.start)
        assert a.proc is not None and b.proc is not None
        async with aiohttp.ClientSession() as session:
            caller = await token(session, a.url, str(company), secret)
            await asyncio.sleep(0.5)
            base_a, base_b = _peak_reset(a.proc.pid), _peak_reset(b.proc.pid)
            start = time.perf_counter()
            with payload.open("rb") as body:
                status, answer = await caller.call(
                    "POST", "/v1/documents", data=body, headers={"Content-Type": "application/xml"}
                )
            submitted = time.perf_counter()
            if status != 202:
                raise RuntimeError(f"the submission was refused: {status} {answer}")
            doc_id = answer["data"]["id"]
            while True:
                status, answer = await caller.call("GET", f"/v1/documents/{doc_id}")
                if answer["data"]["status"] not in ("queued", "sending"):
                    break
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(f"the document was not delivered in {timeout:.0f} s")
                await asyncio.sleep(0.2)
            done = time.perf_counter()
            growth_a = (_pid_kb(a.proc.pid, "VmHWM") - base_a) / 1024
            growth_b = (_pid_kb(b.proc.pid, "VmHWM") - base_b) / 1024
    finally:
        a.stop()
        b.stop()
    digests = {}
    for side, dsn, query in (
        ("sent", dsn_a, "SELECT d.sha256, sha256(d.content) AS actual FROM outbound_messages o "
                        "JOIN documents d ON d.sha256 = o.document_sha256"),
        ("received", dsn_b, "SELECT d.sha256, sha256(d.content) AS actual FROM inbound_messages m "
                            "JOIN documents d ON d.sha256 = m.document_sha256"),
    ):  # fmt: skip
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(query)
            digests[side] = (bytes(row["sha256"]), bytes(row["actual"])) if row else None
        finally:
            await conn.close()
    return {
        "status": answer["data"]["status"], "sender_rss_growth_mb": growth_a, "receiver_rss_growth_mb": growth_b,
        "submit_s": submitted - start, "deliver_s": done - submitted, "digests": digests,
        "validation": answer["data"].get("warnings"),
    }  # fmt: skip


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
            worker = asyncio.run(_worker_main(tmp, pki, dsn, size))
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
    sent_digests, received_digests = worker["digests"]["sent"], worker["digests"]["received"]
    same = sent_digests == received_digests and sent_digests[0] == sent_digests[1]
    print(f"Through the API and the outbound worker ({size / 1e6:.0f} MB bare invoice, two gateway processes)")
    print(
        f"  sending gateway:   peak RSS growth {worker['sender_rss_growth_mb']:.1f} MB; "
        f"submit {worker['submit_s']:.2f} s, deliver {worker['deliver_s']:.2f} s; {worker['status']}"
    )
    print(
        f"  receiving gateway: peak RSS growth {worker['receiver_rss_growth_mb']:.1f} MB; "
        f"stored SBD equal on both sides (SHA-256): {same}"
    )


async def _worker_main(tmp: Path, pki: Any, admin_dsn: str, size: int) -> dict[str, Any]:
    from gateway.core.migrate import apply_migrations
    from gateway.dev.dns import KnotDns
    from tests.support.services import SML_ZONE, with_database

    knot = KnotDns(tmp / "dns", SML_ZONE)
    knot.start()
    try:
        conn = await asyncpg.connect(admin_dsn)
        try:
            for name in ("large_a", "large_b"):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        dsns = with_database(admin_dsn, "large_a"), with_database(admin_dsn, "large_b")
        for dsn in dsns:
            conn = await asyncpg.connect(dsn)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()
        payload = tmp / "bare.xml"
        write_payload(payload, size, bare=True)
        return await worker_case(pki, dsns[0], dsns[1], knot, payload)
    finally:
        knot.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000_000)
