"""`peppol-gateway sandbox` (what `make run` starts): a whole local network from one command,
used through its own CLI the way the README says, and stopped without leaving a process."""

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

from tests.support.paths import EXAMPLES


def _processes_under(folder: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if folder in cmdline and "State:\tZ" not in status:
            found.append(cmdline)
    return found


def _api(
    base: str, path: str, *, token: str = "", body: bytes | None = None, form: dict[str, str] | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        headers["Content-Type"] = "application/xml"
    request = urllib.request.Request(base + path, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_sandbox_delivers_an_invoice_between_its_two_access_points(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PEPPOL_DATABASE_DATA_DIR": str(tmp_path / ".data"),
        "PEPPOL_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "sandbox"], cwd=tmp_path, env={**env, "PYTHONPATH": str(Path.cwd())},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    facts_file = tmp_path / ".sandbox" / "sandbox.json"
    try:
        deadline = time.monotonic() + 90
        while not facts_file.exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the sandbox did not come up"
            time.sleep(0.2)
        facts = json.loads(facts_file.read_text())
        a, b = facts["access_points"]
        assert (a["name"], a["seat_id"], b["seat_id"]) == ("AP-A", "POP000001", "POP000002")
        assert {c["participant_id"] for c in facts["companies"]} == {
            "iso6523-actorid-upis::0192:991825827",
            "iso6523-actorid-upis::0216:003720774740",
            "iso6523-actorid-upis::9925:be0848934496",  # the reporting stand-in
        }
        cli = [sys.executable, "-m", "gateway.cli"]
        sent = subprocess.run(
            [*cli, "--config", a["config"], "send", str(EXAMPLES / "invoice.xml"), "--json"],
            capture_output=True, text=True, check=False, cwd=tmp_path, env={**env, "PYTHONPATH": str(Path.cwd())},
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert json.loads(sent.stdout)["state"] == "delivered"
        box = subprocess.run(
            [*cli, "--config", b["config"], "mailbox"], capture_output=True, text=True, check=False,
            cwd=tmp_path, env={**env, "PYTHONPATH": str(Path.cwd())},
        )  # fmt: skip
        assert "Suomen Osto Oy" in box.stdout and "from 0192:991825827 via POP000001" in box.stdout
        # The buyer answers with the example Invoice Response: it carries no postal address (the
        # BIS rules allow none), so C1's country is the sending company's registered one.
        answered = subprocess.run(
            [*cli, "--config", b["config"], "send", str(EXAMPLES / "invoice-response.xml"), "--json"],
            capture_output=True, text=True, check=False, cwd=tmp_path, env={**env, "PYTHONPATH": str(Path.cwd())},
        )  # fmt: skip
        assert answered.returncode == 0, answered.stdout + answered.stderr
        assert json.loads(answered.stdout)["state"] == "delivered"
        # Over the REST API, asking for a Message Level Status: AP-B sends one back to AP-A's
        # SPID, and the sent document shows it. (Another invoice: the one sent above would be
        # refused as a duplicate.)
        norway = next(c for c in facts["companies"] if c["participant_id"].endswith("0192:991825827"))
        token = _api(a["api_url"], "/oauth2/token", form={
            "grant_type": "client_credentials", "client_id": norway["company_id"], "client_secret": norway["api_key"],
        })["access_token"]  # fmt: skip
        sent = _api(
            a["api_url"], "/v1/documents?mls_type=ALWAYS_SEND", token=token,
            body=(EXAMPLES / "invoice.xml").read_bytes().replace(b">NS-2026-1001<", b">NS-2026-1002<", 1),
        )["data"]  # fmt: skip
        deadline = time.monotonic() + 60
        while (doc := _api(a["api_url"], f"/v1/documents/{sent['id']}", token=token)["data"])["status"] != "accepted":
            assert time.monotonic() < deadline, doc
            time.sleep(0.2)
        assert doc["mls"]["code"] == "AB"
        # The demo companies' business cards reach the stand-in Peppol Directory, and AP-A's
        # search finds the Finnish company through it.
        deadline = time.monotonic() + 60
        while len(_api(facts["directory"]["received_url"], "")["indexed"]) < 3:
            assert time.monotonic() < deadline, _api(facts["directory"]["received_url"], "")
            time.sleep(0.2)
        found = _api(a["api_url"], "/v1/directory/search?q=suomen&country=FI", token=token)["data"]
        assert [m["participant"] for m in found["matches"]] == ["iso6523-actorid-upis::0216:003720774740"]
        check = _api(a["api_url"], "/v1/participants/0216:003720774740?profile=ORDER", token=token)["data"]
        assert (check["registered"], check["receives"]) == (True, True)
        assert check["business_card"]["entities"][0]["name"] == "Suomen Osto Oy"
        # The monthly report travels the whole path too: to the reporting stand-in on AP-B.
        report = subprocess.run(
            [*cli, "--config", a["config"], "report", "tsr", "--send", "--month", time.strftime("%Y-%m", time.gmtime())],
            capture_output=True, text=True,
            check=False, cwd=tmp_path, env={**env, "PYTHONPATH": str(Path.cwd())},
        )  # fmt: skip
        assert report.returncode == 0, report.stdout + report.stderr
        assert json.loads(report.stdout)["state"] == "delivered"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    from gateway.dev.postgres import EmbeddedPostgres

    cluster = EmbeddedPostgres(tmp_path / ".data").base  # relocated when postgres cannot enter tmp
    try:
        deadline = time.monotonic() + 10
        while (_processes_under(str(tmp_path)) or _processes_under(str(cluster))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_under(str(tmp_path)) == []
        assert _processes_under(str(cluster)) == []
    finally:
        if cluster != tmp_path / ".data":
            import shutil

            shutil.rmtree(cluster, ignore_errors=True)


def _start_sandbox(tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PEPPOL_DATABASE_DATA_DIR": str(tmp_path / ".data"),
        "PEPPOL_LOG_LEVEL": "warning",
        "PYTHONPATH": str(Path.cwd()),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "sandbox"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _child_serving(parent: int, config: str) -> int:
    """The pid of the ``serve`` child of ``parent`` using ``config``, or 0."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and config in cmdline and " serve" in cmdline:
            return int(entry.name)
    return 0


def test_sandbox_whose_access_point_dies_says_which_and_exits_non_zero(tmp_path: Path) -> None:
    from gateway.dev.postgres import EmbeddedPostgres
    from gateway.dev.sandbox import EXIT_ACCESS_POINT_DIED

    proc = _start_sandbox(tmp_path)
    facts_file = tmp_path / ".sandbox" / "sandbox.json"
    try:
        deadline = time.monotonic() + 90
        while not facts_file.exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the sandbox did not come up"
            time.sleep(0.2)
        b = json.loads(facts_file.read_text())["access_points"][1]
        assert b["name"] == "AP-B"
        ap_b = _child_serving(proc.pid, b["config"])
        if not ap_b:
            os.killpg(proc.pid, signal.SIGINT)
            raise AssertionError("AP-B is not running: " + proc.communicate(timeout=60)[0].decode()[-3000:])
        os.kill(ap_b, signal.SIGKILL)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
    text = output.decode(errors="replace")
    assert proc.returncode == EXIT_ACCESS_POINT_DIED != 0, text[-3000:]
    died = [line for line in text.splitlines() if "sandbox_access_point_died" in line]
    assert len(died) == 1, text[-3000:]
    assert "AP-B" in died[0] and f"pid={ap_b}" in died[0] and "SIGKILL" in died[0], died[0]
    cluster = EmbeddedPostgres(tmp_path / ".data").base
    try:
        deadline = time.monotonic() + 10
        while (_processes_under(str(tmp_path)) or _processes_under(str(cluster))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_under(str(tmp_path)) == []
        assert _processes_under(str(cluster)) == []
    finally:
        if cluster != tmp_path / ".data":
            import shutil

            shutil.rmtree(cluster, ignore_errors=True)


def test_sandbox_killed_outright_leaves_no_process(tmp_path: Path) -> None:
    from gateway.dev.postgres import EmbeddedPostgres

    proc = _start_sandbox(tmp_path)
    facts_file = tmp_path / ".sandbox" / "sandbox.json"
    try:
        deadline = time.monotonic() + 90
        while not facts_file.exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the sandbox did not come up"
            time.sleep(0.2)
        time.sleep(0.5)  # the facts are written just before the sandbox settles in its loop
        assert _processes_under(str(tmp_path))  # the access points and Knot
        os.kill(proc.pid, signal.SIGKILL)  # the sandbox only, not the processes it started
        proc.communicate(timeout=40)  # EOF once every process holding its output is gone
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    cluster = EmbeddedPostgres(tmp_path / ".data").base
    try:
        deadline = time.monotonic() + 30
        while (_processes_under(str(tmp_path)) or _processes_under(str(cluster))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_under(str(tmp_path)) == []
        assert _processes_under(str(cluster)) == []
    finally:
        if cluster != tmp_path / ".data":
            import shutil

            shutil.rmtree(cluster, ignore_errors=True)
