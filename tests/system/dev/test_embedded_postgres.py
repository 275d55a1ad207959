"""The embedded PostgreSQL: starts, stops, and never leaves a server behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from gateway.dev.postgres import EmbeddedPostgres, EmbeddedPostgresError, find_pg_bindir


def _postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.data / "postmaster.pid").read_text().splitlines()[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _pg_ctl(data: Path, action: str) -> None:
    cmd = [str(find_pg_bindir() / "pg_ctl"), "-D", str(data), "-l", str(data.parent / "pg.log"), "-m", "fast",
           "-w", action]  # fmt: skip
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    done = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        check=False, start_new_session=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


async def test_server_accepts_connections_and_stops_cleanly(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "db", durable=False)
    dsn = server.start()
    pid = _postmaster_pid(server)
    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()
    server.stop()
    assert _wait_gone(pid)


async def test_the_socket_dsn_reaches_the_same_server_over_its_unix_socket(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "db", durable=False, settings={"application_name": "embedded"})
    server.start()
    try:
        assert "host=" in server.socket_dsn
        assert server.running_dsn() == server.socket_dsn
        local = await asyncpg.connect(server.socket_dsn)
        remote = await asyncpg.connect(server.dsn)  # TCP still works
        try:
            assert await local.fetchval("SELECT inet_client_addr()") is None  # a Unix socket
            assert str(await remote.fetchval("SELECT inet_client_addr()")) == "127.0.0.1"
            assert await local.fetchval("SHOW application_name") == "embedded"  # settings reach the server
        finally:
            await local.close()
            await remote.close()
    finally:
        server.stop()


def test_second_owner_of_the_same_folder_is_refused(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "db", durable=False)
    server.start()
    try:
        with pytest.raises(EmbeddedPostgresError, match="another gateway process"):
            EmbeddedPostgres(tmp_path / "db", durable=False).start()
    finally:
        server.stop()


def test_server_of_a_killed_owner_is_stopped_by_the_watchdog(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from gateway.dev.postgres import EmbeddedPostgres\n"
        "from gateway.core.logs import configure_logging\n"
        "configure_logging('console', 'warning')\n"
        "s = EmbeddedPostgres(__import__('pathlib').Path(sys.argv[1]), durable=False)\n"
        "s.start(); print(s.data, flush=True); time.sleep(120)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "db")], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    data = Path(owner.stdout.readline().strip())
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    try:
        assert _wait_gone(pid), "postmaster outlived its killed owner"
    finally:
        import shutil

        shutil.rmtree(data.parent, ignore_errors=True)


def test_watchdog_follows_a_restarted_server(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from gateway.dev.postgres import EmbeddedPostgres\n"
        "from gateway.core.logs import configure_logging\n"
        "configure_logging('console', 'warning')\n"
        "s = EmbeddedPostgres(__import__('pathlib').Path(sys.argv[1]), durable=False)\n"
        "s.start(); print(s.data, flush=True); time.sleep(120)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "db")], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    data = Path(owner.stdout.readline().strip())
    first = int((data / "postmaster.pid").read_text().splitlines()[0])
    try:
        # A restart whose pause the watchdog surely sees (pg_ctl restart alone is down ~0.1 s);
        # restart on a stopped server starts it with the options it last ran with.
        for action in ("stop", "restart"):
            _pg_ctl(data, action)
            time.sleep(1)
        assert not _alive(first)
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        assert pid != first
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert _wait_gone(pid, 5), "the restarted postmaster outlived its killed owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        import shutil

        if (data / "postmaster.pid").exists():
            _pg_ctl(data, "stop")
        shutil.rmtree(data.parent, ignore_errors=True)


def test_stale_server_from_an_earlier_run_is_reclaimed(tmp_path: Path) -> None:
    first = EmbeddedPostgres(tmp_path / "db", durable=False, watchdog=False)
    first.start()
    stale_pid = _postmaster_pid(first)
    first._unlock()  # the owner vanished without stopping its server
    second = EmbeddedPostgres(tmp_path / "db", durable=False)
    try:
        second.start()
        assert _wait_gone(stale_pid)
        assert _postmaster_pid(second) != stale_pid
    finally:
        second.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="the relocation only applies when run as root")
def test_folder_postgres_cannot_enter_is_relocated(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    server = EmbeddedPostgres(private / "data", durable=False)
    assert str(server.base).startswith("/var/tmp/peppol-gateway-")
    server.start()
    server.stop()
    assert not server.base.exists()
