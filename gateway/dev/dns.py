"""A private authoritative DNS server (Knot) for a local SML zone.

Used by the sandbox network and the tests: it serves one zone on 127.0.0.1 (UDP and TCP) and
accepts TSIG-signed RFC 2136 updates, which is exactly how a local SML publishes participants.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import structlog

from gateway.core.process import parent_death_signal
from gateway.dev.errors import DevError

__all__ = ["KnotDns", "KnotDnsError"]

log = structlog.get_logger("gateway.dev.dns")


class KnotDnsError(DevError):
    """Knot is missing or did not start."""


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise KnotDnsError("no free port for DNS")


class KnotDns:
    """Run ``knotd`` for ``zone`` from files in ``directory``."""

    key_name = "sml-update"

    def __init__(self, directory: Path, zone: str) -> None:
        self.directory = Path(directory)
        self.zone = zone.rstrip(".")
        self.port = 0
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        storage = self.directory / "knot"
        if storage.exists():
            shutil.rmtree(storage)
        storage.mkdir()
        zone_file = storage / f"{self.zone}.zone"
        zone_file.write_text(
            f"$ORIGIN {self.zone}.\n$TTL 60\n"
            f"@ IN SOA ns.{self.zone}. hostmaster.{self.zone}. 1 3600 600 86400 60\n"
            f"@ IN NS ns.{self.zone}.\n"
            "ns IN A 127.0.0.1\n"
        )
        config = storage / "knot.conf"
        config.write_text(
            "server:\n"
            f'    rundir: "{storage}"\n'
            f"    listen: 127.0.0.1@{self.port}\n"
            "key:\n"
            f"  - id: {self.key_name}\n"
            "    algorithm: hmac-sha256\n"
            f"    secret: {self.secret}\n"
            "acl:\n"
            "  - id: update_acl\n"
            f"    key: {self.key_name}\n"
            "    action: update\n"
            "database:\n"
            f'    storage: "{storage}"\n'
            "template:\n"
            "  - id: default\n"
            f'    storage: "{storage}"\n'
            '    file: "%s.zone"\n'
            "    zonefile-sync: -1\n"
            "    journal-content: changes\n"
            "zone:\n"
            f"  - domain: {self.zone}\n"
            "    acl: update_acl\n"
            "log:\n"
            "  - target: stderr\n"
            "    any: warning\n"
        )
        return config

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers; returns ``HOST:PORT``."""
        knotd = shutil.which("knotd") or "/usr/sbin/knotd"
        if not os.path.exists(knotd):
            raise KnotDnsError("knotd not found: install Debian's 'knot' package")
        self.port = _free_port()
        config = self._write_config()
        with open(self.directory / "knot.log", "wb") as log_file:
            self._process = subprocess.Popen(
                [knotd, "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                preexec_fn=parent_death_signal(signal.SIGTERM),  # ends with us, even after SIGKILL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise KnotDnsError("knotd exited: " + (self.directory / "knot.log").read_text(errors="replace")[-500:])
            if self._answers():
                log.info("devdns_started", zone=self.zone, address=self.address)
                return self.address
            time.sleep(0.05)
        self.stop()
        raise KnotDnsError("knotd did not answer in time")

    def _answers(self) -> bool:
        import dns.message
        import dns.query

        try:
            query = dns.message.make_query(self.zone + ".", "SOA")
            dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.3)
            return True
        except Exception:  # not up yet
            return False

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> KnotDns:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
