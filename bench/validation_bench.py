"""Validation throughput (UBL schema + CEN EN 16931 + Peppol BIS) for 10 KB and 1 MB invoices,
one process against a process pool of two, and the CPU per document of one warm process (all its
threads: time.process_time)."""

from __future__ import annotations

import asyncio
import time

from bench.as4_bench import invoice_of_size
from bench.report import Figure
from gateway.duties.validation import Validator, validate_document


def _single(document: bytes, seconds: float) -> tuple[float, float]:
    """(documents/s, CPU ms per document) in this process, stylesheets compiled first."""
    for _ in range(3):
        validate_document(document)
    count, deadline = 0, time.perf_counter() + seconds
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() < deadline:
        assert validate_document(document).layers_run[-1] == "peppol"
        count += 1
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count * 1000


async def _pool(document: bytes, seconds: float, processes: int = 2) -> float:
    validator = Validator(processes)
    try:
        await asyncio.gather(*(validator.validate(document) for _ in range(processes * 2)))  # warm every process
        count, deadline = 0, time.perf_counter() + seconds
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await validator.validate(document)
                count += 1

        await asyncio.gather(*(worker() for _ in range(processes * 2)))
        return count / (time.perf_counter() - start)
    finally:
        validator.close()


def main() -> list[Figure]:
    print("Validation (UBL 2.1 XSD + CEN EN 16931 + Peppol BIS Billing 3.0)")
    figures = []
    for label, size, seconds in (("10 KB invoice", 10_000, 5.0), ("1 MB invoice", 1_000_000, 8.0)):
        document = invoice_of_size(size)
        one, cpu = _single(document, seconds)
        two = asyncio.run(_pool(document, seconds))
        print(
            f"  {label}: {one:,.1f} documents/s in one process ({cpu:.2f} ms CPU each), {two:,.1f} with a pool "
            f"of 2 ({two / one:.2f}x)"
        )
        if size == 10_000:
            figures.append(Figure("validation.cpu_per_doc", value=cpu, note=f"{len(document):,} byte invoice"))
    return figures


if __name__ == "__main__":
    main()
