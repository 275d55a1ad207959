"""Driving the phase4 peer JVM (tests/support/peers/phase4, built by .ci/phase4) over its control
protocol: one tab-separated request line in, one JSON line out. The interop tests and the phase4
benchmark share it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support.as4 import DOCTYPE, PROCESS, RECEIVER, SENDER
from tests.support.paths import DATA, PEERS, ROOT

PEER_DIR = PEERS / "phase4"
PEER_JAR = PEER_DIR / "target" / "phase4-peer.jar"
PEER_CLASSPATH = PEER_DIR / "target" / "classpath.txt"
UBL = DATA / "invoice-bis3.xml"
# Quick start for tests (C1 only); a benchmark lets the JIT go all the way instead.
TEST_JVM_FLAGS = ("-Xshare:auto", "-XX:TieredStopAtLevel=1")


class PeerBuildError(RuntimeError):
    """The peer could not be built (no JDK/Maven, or no way to fetch its dependencies)."""


def ensure_peer_built() -> None:
    """`make test` builds the peer (.ci/phase4); build it here when run on its own."""
    if PEER_JAR.exists() and PEER_CLASSPATH.exists():
        return
    done = subprocess.run(["bash", str(ROOT / ".ci" / "phase4")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise PeerBuildError(lines[-1] if lines else "phase4 peer build failed")


class Phase4Peer:
    """The phase4 JVM: one request line in, one JSON line out."""

    def __init__(self, store: Path, log: Path, jvm_flags: tuple[str, ...] = TEST_JVM_FLAGS) -> None:
        self.store = store
        self.log_path = log
        self._log = log.open("wb")
        classpath = f"{PEER_JAR}:{PEER_CLASSPATH.read_text().strip()}"
        self.proc = subprocess.Popen(
            ["java", *jvm_flags, "-cp", classpath, "org.peppolgateway.phase4peer.Phase4Peer"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        self.port = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def request(self, command: str, **fields: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        line = "\t".join([command, *(f"{k}={v}" for k, v in fields.items())])
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise AssertionError(f"phase4 peer exited: {self.log_path.read_text()[-3000:]}")
        result: dict[str, Any] = json.loads(answer)
        assert result.get("ok"), f"{result}\n{self.log_path.read_text()[-3000:]}"
        return result

    def init(self, pki_dir: Path, store: Path, *, stem: str = "ap2", **extra: str) -> dict[str, Any]:
        """Keys and trust from a dev PKI directory; starts phase4's receiver on a loopback port."""
        d = pki_dir
        answer = self.request(
            "init", key=str(d / f"{stem}.key.pem"), cert=str(d / f"{stem}.cert.pem"),
            ap_ca=str(d / "ap-ca.cert.pem"), root_ca=str(d / "root-ca.cert.pem"),
            smp_ca=str(d / "smp-ca.cert.pem"), store=str(store), **extra,
        )  # fmt: skip
        self.port = int(answer["port"])
        return answer

    def send_fields(self, **fields: str) -> dict[str, str]:
        """The fields of one invoice from SENDER to RECEIVER, overridden by ``fields``."""
        base = {"ubl": str(UBL), "sender": SENDER, "receiver": RECEIVER, "doctype": DOCTYPE,
                "process": PROCESS, "country": "SE"}  # fmt: skip
        return {**base, **fields}

    def url(self, path: str = "/as4") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self) -> list[dict[str, Any]]:
        path = self.store / "received.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            self.proc.kill()
            self.proc.wait()
        finally:
            self._log.close()
