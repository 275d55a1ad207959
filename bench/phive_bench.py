"""Our document validation beside phive's (com.helger.phive, the Java validation engine behind
phoss-ap), in one run, on the same ~10 KB invoice (bench.as4_bench.invoice_of_size, as the other
benchmarks send) and the same artefacts: the phive-rules-peppol jar named in
gateway/duties/rule_versions.toml, the BIS Billing release ours picks for the invoice's date.

Both run every layer (UBL 2.1 XSD, CEN EN 16931, Peppol BIS) from the document's bytes, each a
warm-up batch first that is discarded (phive: thousands of documents, until the JIT has settled),
then a measured batch. Figures per document: CPU (ours: the process, in one process and across a
pool of two workers; phive: the validating thread, and the whole JVM with its JIT and GC threads),
wall time, and the resident memory of each process at the end. The peer is
tests/support/peers/phive, built by .ci/phive.

Run: ``python -m bench.phive_bench [--warmup N] [--count N] [--jvm-flag F ...]``. It prints
figures and asserts nothing beyond both engines reaching the same verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.as4_bench import invoice_of_size
from bench.phase4_bench import process_cpu
from bench.report import Figure, Peer
from gateway.duties.validation import ValidationResult, Validator, validate_document
from tests.support.paths import PEERS, ROOT

PEER_DIR = PEERS / "phive"
PEER_JAR = PEER_DIR / "target" / "phive-bench.jar"
PEER_CLASSPATH = PEER_DIR / "target" / "classpath.txt"


def rss_kb(pid: int | str = "self") -> int:
    """Resident memory of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def phive_set(result: ValidationResult) -> str:
    """phive's executor set for the release ours used: its id ends in the folder of the release's
    artefacts in the rule jar (``openpeppol/2026.5`` -> ``eu.peppol.bis3:invoice:2026.5``)."""
    match = re.search(r"/openpeppol/([0-9.]+)/", result.artefacts["peppol-bis-billing-3"])
    assert match, result.artefacts
    kind = "invoice" if result.document.endswith("}Invoice") else "creditnote"
    return f"eu.peppol.bis3:{kind}:{match.group(1)}"


@dataclass(frozen=True)
class Ours:
    cpu_ms: float
    wall_ms: float
    rss_kb: int
    pool_rate: float
    pool_cpu_ms: float
    pool_parent_cpu_ms: float
    pool_rss_kb: list[int]


def ours_single(document: bytes, warmup: int, count: int) -> tuple[float, float]:
    """CPU and wall milliseconds per document, in this process."""
    for _ in range(warmup):
        validate_document(document)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        validate_document(document)
    return (time.process_time() - cpu) / count * 1000, (time.perf_counter() - wall) / count * 1000


async def ours_pool(document: bytes, warmup: int, count: int) -> tuple[float, float, float, list[int]]:
    """Documents per second through a pool of two workers (four in flight), CPU per document of
    the workers and of this process (the dispatching), and each worker's resident memory."""
    validator = Validator(2)
    try:

        async def run(n: int) -> None:
            left = n

            async def one() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await validator.validate(document)

            await asyncio.gather(*(one() for _ in range(4)))

        await run(max(warmup, 8))
        workers = validator.pids
        cpu, parent, wall = process_cpu(workers), time.process_time(), time.perf_counter()
        await run(count)
        wall = time.perf_counter() - wall
        cpu, parent = process_cpu(workers) - cpu, time.process_time() - parent
        return count / wall, cpu / count * 1000, parent / count * 1000, [rss_kb(pid) for pid in workers]
    finally:
        validator.close()


def ours(document: bytes, warmup: int, count: int) -> Ours:
    cpu, wall = ours_single(document, warmup, count)
    rate, pool_cpu, parent, pool_rss = asyncio.run(ours_pool(document, warmup, count))
    return Ours(cpu, wall, rss_kb(), rate, pool_cpu, parent, pool_rss)


def ensure_peer_built() -> None:
    done = subprocess.run(["bash", str(ROOT / ".ci" / "phive")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else "phive peer build failed")


def phive(document: bytes, set_id: str, warmup: int, count: int, jvm_flags: list[str]) -> dict[str, Any]:
    """One JVM: warm-up, then the measured batch; its JSON figures."""
    classpath = f"{PEER_JAR}:{PEER_CLASSPATH.read_text().strip()}"
    with tempfile.NamedTemporaryFile(suffix=".xml") as file:
        file.write(document)
        file.flush()
        done = subprocess.run(
            ["java", *jvm_flags, "-cp", classpath, "org.peppolgateway.phivebench.PhiveBench",
             file.name, set_id, str(warmup), str(count)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"phive bench failed: {done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> list[Figure]:
    """``argv`` None: the defaults (``make bench``); the command line goes through ``cli``. Returns
    phive's CPU per document (whole JVM) as the peer of ``validation.cpu_per_doc``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=3000, help="phive's warm-up documents (ours: a tenth)")
    parser.add_argument("--count", type=int, default=2000, help="measured documents, each side")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--jvm-flag", action="append", default=[], help="a flag for phive's JVM (repeatable)")
    parser.add_argument("--skip-phive", action="store_true", help="our figures only")
    args = parser.parse_args(argv or [])

    document = invoice_of_size(args.size)
    result = validate_document(document)
    set_id = phive_set(result)
    errors = sorted(f.rule_id for f in result.findings if f.flag == "fatal")
    print(f"Validation, ours beside phive: {len(document):,} byte invoice, phive set {set_id}")
    print(f"  ours: {result.status}, layers {', '.join(result.layers_run)}, errors {errors}")
    print(f"  ours' artefacts: {result.artefacts['peppol-bis-billing-3']}; {result.artefacts['saxon']}")
    mine = ours(document, max(200, args.warmup // 10), args.count)
    print(
        f"  ours, one process:  {mine.cpu_ms:6.2f} ms CPU/doc, {mine.wall_ms:6.2f} ms wall/doc, "
        f"RSS {mine.rss_kb / 1024:.0f} MB"
    )
    print(
        f"  ours, pool of 2:    {mine.pool_cpu_ms:6.2f} ms CPU/doc in the workers (+{mine.pool_parent_cpu_ms:.2f} ms "
        f"dispatching), {mine.pool_rate:,.1f} docs/s, worker RSS "
        f"{', '.join(f'{kb / 1024:.0f}' for kb in mine.pool_rss_kb)} MB"
    )
    key = "validation.cpu_per_doc"
    if args.skip_phive:
        return [Figure(key, peers=(Peer("phive", missing="--skip-phive"),))]
    try:
        ensure_peer_built()
    except RuntimeError as exc:
        print(f"  phive: not run: {exc}")
        return [Figure(key, peers=(Peer("phive", missing=f"not run: {exc}"),))]
    theirs = phive(document, set_id, args.warmup, args.count, args.jvm_flag)
    phive_errors = sorted(e for layer in theirs["layers"] for e in layer["errors"])
    skipped = [layer["type"] for layer in theirs["layers"] if layer["skipped"]]
    print(
        f"  phive {theirs['phive']} ({theirs['java']}{', ' + ' '.join(args.jvm_flag) if args.jvm_flag else ''}), "
        f"warm-up {theirs['warmup']} docs: {'valid' if theirs['valid'] else 'invalid'}, errors {phive_errors}"
        f"{', skipped ' + ', '.join(skipped) if skipped else ''}"
    )
    print(
        f"  phive, one thread:  {theirs['thread_cpu_ms']:6.2f} ms CPU/doc (thread), {theirs['process_cpu_ms']:.2f} ms "
        f"(whole JVM), {theirs['wall_ms']:6.2f} ms wall/doc, RSS {theirs['rss_kb'] / 1024:.0f} MB "
        f"(heap used {theirs['heap_used_kb'] / 1024:.0f} of {theirs['heap_committed_kb'] / 1024:.0f} MB committed)"
    )
    print(
        f"  ratio ours/phive CPU per document: {mine.cpu_ms / theirs['process_cpu_ms']:.2f} (one process vs whole JVM), "
        f"{mine.pool_cpu_ms / theirs['process_cpu_ms']:.2f} (pool workers vs whole JVM), "
        f"{mine.cpu_ms / theirs['thread_cpu_ms']:.2f} (one process vs phive's thread); "
        f"RSS {mine.pool_rss_kb[0] / theirs['rss_kb']:.2f} (one worker vs the JVM)"
    )
    if errors != phive_errors:
        print(f"  (the engines disagree: ours {errors}, phive {phive_errors})")
    note = f"whole JVM, warmed with {theirs['warmup']} documents"
    return [Figure(key, peers=(Peer("phive", theirs["process_cpu_ms"], note=note),))]


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
