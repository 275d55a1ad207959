"""The gateway against independent AS4 implementations: peppol-py sends to our `/as4`, and our
outbound worker delivers to a receiver built on the `as4` package."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.outbound import queries as outbound_queries
from gateway.outbound.submission import derive_submission, submit_document
from tests.support.gateways import free_port, in_process_gateway, new_database, register_company, wait_for_state
from tests.support.paths import EXAMPLES
from tests.system.interop.test_as4_interop import (
    PEER_PYTHON,
    PEER_SCRIPT,
    PEPPOL_PY_PYTHON,
    PEPPOL_PY_SCRIPT,
    needs_peer,
    needs_peppol_py,
)


@needs_peppol_py
async def test_peppol_py_delivers_into_a_mailbox(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> None:
    async with in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, workers=False) as b:
        finland = await register_company(b, "Suomen Osto Oy", "FI", "0216:003720774740", "INVOICE_AND_CREDIT_NOTE")
        d = dev_pki.directory
        proc = await asyncio.create_subprocess_exec(
            str(PEPPOL_PY_PYTHON), "-I", str(PEPPOL_PY_SCRIPT), "--url", b.as4_url,
            "--key", str(d / "ap1.key.pem"), "--cert", str(d / "ap1.cert.pem"),
            "--receiver-cert", str(d / "ap2.cert.pem"), "--ap-ca", str(d / "ap-ca.cert.pem"),
            "--ubl", str(EXAMPLES / "invoice.xml"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert json.loads(out)["sent"] is True, out
        rows = await b.pool.fetch(
            "SELECT m.sending_ap, m.sender_value FROM mailbox_entries e JOIN inbound_messages m ON m.id = e.message_id "
            "WHERE e.company_id = $1",
            finland,
        )
        assert [(r["sending_ap"], r["sender_value"]) for r in rows] == [("POP000001", "0192:991825827")]


@needs_peer
async def test_our_worker_delivers_to_an_as4_package_receiver(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns, tmp_path: Path
) -> None:
    port = free_port()
    d = dev_pki.directory
    log = tmp_path / "received.jsonl"
    peer = subprocess.Popen(
        [str(PEER_PYTHON), "-I", str(PEER_SCRIPT), "serve", "--key", str(d / "ap2.key.pem"), "--cert", str(d / "ap2.cert.pem"),
         "--root", str(d / "root-ca.cert.pem"), "--ap-ca", str(d / "ap-ca.cert.pem"), "--port", str(port), "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert peer.stdout is not None
        assert json.loads(await asyncio.to_thread(peer.stdout.readline))["listening"] == port
        async with in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a:
            job = await submit_document(
                a.pool, derive_submission((EXAMPLES / "invoice.xml").read_bytes()), retry_window=30,
                endpoint_url=f"http://127.0.0.1:{port}/as4", endpoint_cert=dev_pki.access_points["ap2"].cert,
            )  # fmt: skip
            state = await wait_for_state(a.pool, job, {"delivered", "failed"})
            status = await outbound_queries.outbound_status(a.pool, job)
            assert state == "delivered", status
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        assert [e["state"] for e in entries] == ["received"]
    finally:
        peer.terminate()
        peer.wait(timeout=10)
