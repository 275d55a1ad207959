"""A gateway killed by SIGKILL runs no clean-up: the processes it started must end by themselves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

from gateway.dev.pki import DevPki
from gateway.directory import queries as directory_queries
from gateway.security.credentials import create_api_key
from tests.support.gateways import free_port
from tests.support.paths import EXAMPLES


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _post(url: str, *, token: str = "", body: bytes, content_type: str) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_validation_workers_end_with_a_gateway_killed_by_sigkill(db_dsn: str, dev_pki: DevPki) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        company = await directory_queries.add_company(conn, "Nordic Supplies AS", "NO", "991825827")
        _, secret = await create_api_key(conn, company_id=company)
    finally:
        await conn.close()
    port = free_port()
    d = dev_pki.directory
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": db_dsn,
        "PEPPOL_HTTP_HOST": "127.0.0.1",
        "PEPPOL_HTTP_PORT": str(port),
        "PEPPOL_AP_KEY": str(d / "ap1.key.pem"),
        "PEPPOL_AP_CERT": str(d / "ap1.cert.pem"),
        "PEPPOL_AP_TRUST": str(d / "ap-ca.cert.pem"),
        "PEPPOL_SMP_KEY": str(d / "smp.key.pem"),
        "PEPPOL_SMP_CERT": str(d / "smp.cert.pem"),
        "PEPPOL_SMP_TRUST": str(d / "smp-ca.cert.pem"),
        "PEPPOL_VALIDATION_ON_SUBMIT": "true",
        "PEPPOL_VALIDATION_PROCESSES": "2",
        "PEPPOL_WORKERS_OUTBOUND": "0",
        "PEPPOL_REPORTING_SCHEDULE": "false",
        "PEPPOL_LOG_LEVEL": "warning",
    }
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    started: set[int] = set()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert gateway.poll() is None, "the gateway exited"
            assert time.monotonic() < deadline, "the gateway did not answer"
            try:
                with urllib.request.urlopen(f"{base}/v1/ping", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        form = {"grant_type": "client_credentials", "client_id": str(company), "client_secret": secret}
        status, answer = _post(
            f"{base}/oauth2/token",
            body=urllib.parse.urlencode(form).encode(),
            content_type="application/x-www-form-urlencoded",
        )
        assert status == 200, answer
        # A submission is validated in the pool, which starts its workers on demand.
        status, answer = _post(
            f"{base}/v1/documents",
            token=answer["access_token"],
            body=(EXAMPLES / "invoice.xml").read_bytes(),
            content_type="application/xml",
        )
        assert status in (202, 400), answer
        started = _descendants(gateway.pid)
        python_children = [p for p in started if "multiprocessing" in Path(f"/proc/{p}/cmdline").read_text()]
        assert python_children, f"no validation worker among {started}"
        gateway.send_signal(signal.SIGKILL)  # only the gateway, not its process group
        gateway.wait()
        deadline = time.monotonic() + 5
        while (alive := [p for p in started if _running(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive == [], f"processes outlived the killed gateway: {alive}"
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
        for pid in started:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
