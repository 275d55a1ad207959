"""A private PostgreSQL cluster run from the system's PostgreSQL binaries.

Used by ``make run`` and the test suite when no ``DATABASE_URL`` is given. The cluster lives in
one folder (``<base>/pg``), listens on 127.0.0.1 on a free port and on a Unix socket in
``<base>/run``, and is protected by a random password kept in ``<base>/pg.password``.

Nothing is left behind: the server runs in its own session (so a Ctrl-C to the terminal does not
race our own orderly stop), a small watchdog process stops it when the owning process dies even
by SIGKILL (it watches the data folder, so a restarted server is stopped too), and a stale
server from an earlier crash is stopped at the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode, urlsplit, urlunsplit

import structlog

from gateway.core.config import Settings
from gateway.dev.errors import DevError

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError", "database_url", "find_pg_bindir"]

log = structlog.get_logger("gateway.dev.postgres")


class EmbeddedPostgresError(DevError):
    """The embedded PostgreSQL could not be prepared, started or stopped."""


def find_pg_bindir() -> Path:
    """The newest PostgreSQL server binaries on this machine."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise EmbeddedPostgresError(
        "PostgreSQL server binaries not found: install Debian's 'postgresql' package "
        "(make run does this as root) or set DATABASE_URL"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _socket_dsn(tcp_dsn: str, socket_dir: str) -> str:
    """``tcp_dsn`` through the Unix socket in ``socket_dir`` (the same server, user and
    database; libpq's and asyncpg's ``host=`` query parameter), unchanged without one."""
    if not socket_dir or not (Path(socket_dir) / f".s.PGSQL.{urlsplit(tcp_dsn).port}").exists():
        return tcp_dsn
    parts = urlsplit(tcp_dsn)
    netloc = parts.netloc.rsplit("@", 1)[0] + "@"
    query = urlencode({"host": socket_dir, "port": str(parts.port)})
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    """Start and stop one private cluster; usable as a context manager.

    ``durable=False`` turns off fsync and friends and removes the folder on stop, for tests.
    ``settings`` are more server settings (``-c name=value``), e.g. for a benchmark that loads
    ``pg_stat_statements``.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        durable: bool = True,
        watchdog: bool = True,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.requested_dir = Path(base_dir).absolute()
        self.durable = durable
        self.settings = dict(settings or {})
        self.watchdog = watchdog
        self.as_root = os.geteuid() == 0
        self.bindir = find_pg_bindir()
        self.base = self._usable_base(self.requested_dir)
        self.data = self.base / "pg"
        self.rundir = self.base / "run"
        self.port = 0
        self._lock_fd: int | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    # -- paths and permissions -------------------------------------------------------------

    def _run_as_owner(self, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self.as_root else args
        return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]

    def _postgres_can_reach(self, directory: Path) -> bool:
        probe = directory
        while not probe.exists():
            probe = probe.parent
        return self._run_as_owner(["test", "-x", str(probe), "-a", "-r", str(probe)]).returncode == 0

    def _usable_base(self, wanted: Path) -> Path:
        """As root the server runs as ``postgres``, which cannot enter a mode-700 home folder;
        then the cluster moves to ``/var/tmp``, keyed by the wanted path so it stays stable."""
        if not self.as_root or self._postgres_can_reach(wanted.parent):
            return wanted
        digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:12]
        fallback = Path("/var/tmp") / f"peppol-gateway-{digest}"  # noqa: S108 - keyed, root-owned
        log.info("devdb_relocated", wanted=str(wanted), used=str(fallback))
        return fallback

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def password_file(self) -> Path:
        return self.base / "pg.password"

    @property
    def postmaster_pid(self) -> int | None:
        """The running server's main process id (its backends are its children), if it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def dsn(self) -> str:
        """The DSN over TCP (127.0.0.1)."""
        password = self.password_file.read_text().strip()
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/postgres"

    @property
    def socket_dsn(self) -> str:
        """The DSN over the server's Unix socket (cheaper per round trip than loopback TCP), or
        over TCP when the server has no socket (its folder's path is too long for one)."""
        return _socket_dsn(self.dsn, self._socket_dir())

    def _socket_dir(self) -> str:
        try:
            return (self.data / "postmaster.pid").read_text().splitlines()[4].strip()
        except (OSError, IndexError):
            return ""

    def running_dsn(self) -> str | None:
        """The DSN of this folder's cluster if another process is running it, else None (over
        its Unix socket when it has one)."""
        pidfile = self.data / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
            password = self.password_file.read_text().strip()
        except (OSError, ValueError, IndexError):
            return None
        if not _pid_alive(pid):
            return None
        return _socket_dsn(f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres", self._socket_dir())

    def _lock(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)  # noqa: S103 - the postgres user must traverse it
        fd = os.open(self.base / "pg.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedPostgresError(
                f"another gateway process is using the embedded database in {self.base}"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        if self.data.exists():
            shutil.rmtree(self.data)
        self.data.mkdir(mode=0o700)
        password = secrets.token_urlsafe(24)
        pwfile = self.base / "pg.initpw"
        pwfile.write_text(password + "\n")
        if self.as_root:
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        args = [
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "-A", "scram-sha-256",
            f"--pwfile={pwfile}",
            "-E", "UTF8",
            "--locale=C",
        ]  # fmt: skip
        if not self.durable:
            args.append("--no-sync")
        result = self._run_as_owner(args)
        pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {result.stderr.strip()[-500:]}")
        self.password_file.write_text(password + "\n")
        os.chmod(self.password_file, 0o600)

    def _stop_stale(self) -> None:
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        if _pid_alive(pid):
            log.warning("devdb_stale_server_stopped", pid=pid)
            self._pg_ctl_stop()

    def _pg_ctl_stop(self) -> None:
        self._run_as_owner(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                "30",
                "stop",
            ]
        )

    def start(self) -> str:
        """Initialise if needed, start, wait for connections, and return the DSN."""
        self._lock()
        try:
            self._initdb()
            self._stop_stale()
            self.rundir.mkdir(exist_ok=True)
            if self.as_root:
                shutil.chown(self.rundir, "postgres", "postgres")
            socket_dir = str(self.rundir) if len(str(self.rundir)) < 90 else ""
            self.port = _free_port()
            options = [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories='{socket_dir}'",
                "-c max_connections=200",
            ]
            if not self.durable:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            options += [f"-c {name}='{value}'" for name, value in self.settings.items()]
            logfile = self.base / "pg.log"
            logfile.touch()
            if self.as_root:
                shutil.chown(logfile, "postgres", "postgres")
            cmd = [
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(logfile),
                "-w", "-t", "60", "-o", " ".join(options), "start",
            ]  # fmt: skip
            if self.as_root:
                cmd = ["runuser", "-u", "postgres", "--", *cmd]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False, start_new_session=True)
            if result.returncode != 0:
                tail = logfile.read_text(errors="replace")[-800:]
                raise EmbeddedPostgresError(f"PostgreSQL did not start: {tail.strip()}")
            if self.watchdog:
                self._start_watchdog()
            log.info("devdb_started", data_dir=str(self.data), port=self.port)
            return self.dsn
        except BaseException:
            self._unlock()
            raise

    def _start_watchdog(self) -> None:
        self._watchdog = subprocess.Popen(
            [
                sys.executable, "-m", "gateway.dev.postgres", "watch",
                str(os.getpid()), str(self.bindir), str(self.data), "1" if self.as_root else "0",
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast shutdown) and release the folder."""
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl_stop()
        if self._watchdog is not None:
            with contextlib.suppress(ProcessLookupError):
                self._watchdog.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=5)
            self._watchdog = None
        self._unlock()
        if not self.durable:
            shutil.rmtree(self.base, ignore_errors=True)
        log.info("devdb_stopped", data_dir=str(self.data))

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _server_running(data: Path) -> bool:
    """Whether a postmaster runs in ``data`` now: its current pid file names a live process.
    Read afresh each time, as a restarted server writes a new one."""
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return _pid_alive(pid)


def _watch(parent: int, bindir: str, data: str, as_root: bool, *, interval: float = 0.3, settle: float = 3.0) -> None:
    """Stop the cluster in ``data`` as soon as ``parent`` is gone, then exit.

    The watch is on the data folder, not on one server process: the server may be restarted
    (``pg_ctl restart``, a reload of settings that need one) while its owner runs, and a pause
    with no server is not the end. The owner ends the watch when it stops the cluster itself;
    a folder that was removed ends it too. After the owner died, a server that was just coming
    up when the first stop ran is stopped as well."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    folder = Path(data)
    while os.getppid() == parent and _pid_alive(parent):
        if not (folder / "PG_VERSION").exists():
            return
        time.sleep(interval)
    cmd = [f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]
    if as_root:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < settle:
        if _server_running(folder):
            subprocess.run(cmd, capture_output=True, check=False)
            quiet_since = time.monotonic()
        time.sleep(interval)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "watch":
        _watch(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1")


@contextlib.asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """Yield the DSN to use, running the embedded cluster for the duration when needed."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        embedded.start()
        dsn = embedded.socket_dsn  # the server is ours and local: its Unix socket
    except EmbeddedPostgresError:
        # Another gateway process (e.g. `make run`) owns the cluster: use it while it runs.
        shared = embedded.running_dsn()
        if shared is None:
            raise
        yield shared
        return
    try:
        yield dsn
    finally:
        embedded.stop()
