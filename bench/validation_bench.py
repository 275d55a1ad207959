"""Validation throughput (UBL schema + CEN EN 16931 + Peppol BIS) for 10 KB and 1 MB invoices,
one process against a process pool of two: documents per second, CPU per document (the workers',
and the dispatching process's), and each worker's resident memory. On a shared machine the wall
clock is noisy; the CPU per document is the figure to compare, and ``2 cores / (workers + dispatch)``
is the throughput it allows on two cores."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.as4_bench import invoice_of_size
from bench.report import Figure
from gateway.duties.validation import Validator, validate_document

TICKS = 100


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids``."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _single(document: bytes, seconds: float) -> tuple[float, float]:
    """Documents per second and CPU milliseconds per document in this process."""
    validate_document(document)  # compile the stylesheets first
    count, deadline = 0, time.perf_counter() + seconds
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() < deadline:
        assert validate_document(document).layers_run[-1] == "peppol"
        count += 1
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count * 1000


async def _pool(document: bytes, seconds: float, processes: int = 2) -> tuple[float, float, float, list[float]]:
    """Documents per second through the pool (two in flight per worker), CPU milliseconds per
    document in the workers and in this process, and each worker's RSS in MB at the end."""
    validator = Validator(processes)
    try:
        await asyncio.gather(*(validator.validate(document) for _ in range(processes * 4)))  # warm every process
        workers = validator.pids
        count, deadline = 0, time.perf_counter() + seconds
        start, cpu, parent = time.perf_counter(), _cpu(workers), time.process_time()

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await validator.validate(document)
                count += 1

        await asyncio.gather(*(worker() for _ in range(processes * 2)))
        rate = count / (time.perf_counter() - start)
        worker_ms = (_cpu(workers) - cpu) / count * 1000
        parent_ms = (time.process_time() - parent) / count * 1000
        return rate, worker_ms, parent_ms, [_rss_mb(pid) for pid in workers]
    finally:
        validator.close()


def main() -> list[Figure]:
    print("Validation (UBL 2.1 XSD + CEN EN 16931 + Peppol BIS Billing 3.0)")
    figures = []
    for label, size, seconds in (("10 KB invoice", 10_000, 5.0), ("1 MB invoice", 1_000_000, 8.0)):
        document = invoice_of_size(size)
        one, one_ms = _single(document, seconds)
        two, worker_ms, parent_ms, rss = asyncio.run(_pool(document, seconds))
        print(
            f"  {label}: {one:,.1f} documents/s in one process ({one_ms:.2f} ms CPU each), {two:,.1f} with a pool "
            f"of 2 ({two / one:.2f}x; {worker_ms:.2f} ms CPU in a worker + {parent_ms:.2f} ms dispatching, "
            f"{2000 / (worker_ms + parent_ms):,.0f}/s on 2 cores by CPU; worker RSS "
            f"{', '.join(f'{mb:.0f}' for mb in rss)} MB)"
        )
        if size == 10_000:
            note = f"{len(document):,} byte invoice, one process"
            figures.append(Figure("validation.cpu_per_doc", value=one_ms, note=note))
    return figures


if __name__ == "__main__":
    main()
