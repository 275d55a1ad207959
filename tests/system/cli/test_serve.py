"""`peppol-gateway serve` as a real process: it answers, and SIGTERM stops everything it started."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gateway.dev.pki import DevPki
from gateway.dev.postgres import EmbeddedPostgres


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_ping(port: int, seconds: float = 30) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/ping", timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the gateway did not answer /v1/ping")


def _postgres_pids_for(folder: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in cmdline and folder in cmdline:
            found.append(int(entry.name))
    return found


def _identity(pki: DevPki) -> dict[str, str]:
    d = pki.directory
    return {
        "PEPPOL_AP_KEY": str(d / "ap1.key.pem"),
        "PEPPOL_AP_CERT": str(d / "ap1.cert.pem"),
        "PEPPOL_AP_TRUST": str(d / "ap-ca.cert.pem"),
        "PEPPOL_SMP_KEY": str(d / "smp.key.pem"),
        "PEPPOL_SMP_CERT": str(d / "smp.cert.pem"),
        "PEPPOL_SMP_TRUST": str(d / "smp-ca.cert.pem"),
    }


def _serve(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PEPPOL_LOG_LEVEL": "warning", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_serve_with_database_url_answers_ping_and_exits_on_sigterm(db_dsn: str, dev_pki: DevPki) -> None:
    port = _free_port()
    proc = _serve({"DATABASE_URL": db_dsn, "PEPPOL_HTTP_PORT": str(port), **_identity(dev_pki)})
    try:
        assert _wait_for_ping(port) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_with_embedded_database_leaves_no_process_after_group_sigterm(tmp_path: Path, dev_pki: DevPki) -> None:
    port = _free_port()
    data_dir = tmp_path / "state"
    proc = _serve({"PEPPOL_DATABASE_DATA_DIR": str(data_dir), "PEPPOL_HTTP_PORT": str(port), **_identity(dev_pki)})
    try:
        assert _wait_for_ping(port) == 200
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    base = EmbeddedPostgres(data_dir).base  # where the cluster really lived (see devdb)
    try:
        deadline = time.monotonic() + 10
        while _postgres_pids_for(str(base)):
            if time.monotonic() > deadline:
                pytest.fail("a postgres process outlived the gateway")
            time.sleep(0.1)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("zone", ["production", "test"])
def test_serve_refuses_the_development_pki_in_a_peppol_zone(tmp_path: Path, dev_pki: DevPki, zone: str) -> None:
    # The shipped Peppol trust of the zone is in force: our development certificate does not chain to it.
    env = {k: v for k, v in _identity(dev_pki).items() if not k.endswith("_TRUST")} | {
        "PEPPOL_SML_ZONE": zone,
        "PEPPOL_DATABASE_DATA_DIR": str(tmp_path / "data"),
    }
    proc = _serve(env)
    _, err = proc.communicate(timeout=60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2, err
    assert len(lines) == 1 and lines[0].startswith("peppol-gateway: configuration error: ap.cert: "), lines
    assert f"the shipped Peppol {zone} G3 AP CA" in lines[0] and "needs a Peppol G3 certificate" in lines[0]
    assert not (tmp_path / "data").exists()  # stopped before anything started
