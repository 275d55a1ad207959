"""Validation throughput (UBL schema + CEN EN 16931 + Peppol BIS) for 10 KB and 1 MB invoices,
one process against a process pool of two."""

from __future__ import annotations

import asyncio
import time

from bench.as4_bench import invoice_of_size
from gateway.duties.validation import Validator, validate_document


def _single(document: bytes, seconds: float) -> float:
    validate_document(document)  # compile the stylesheets first
    count, deadline = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        assert validate_document(document).layers_run[-1] == "peppol"
        count += 1
    return count / (time.perf_counter() - start)


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


def main() -> None:
    print("Validation (UBL 2.1 XSD + CEN EN 16931 + Peppol BIS Billing 3.0)")
    for label, size, seconds in (("10 KB invoice", 10_000, 5.0), ("1 MB invoice", 1_000_000, 8.0)):
        document = invoice_of_size(size)
        one = _single(document, seconds)
        two = asyncio.run(_pool(document, seconds))
        print(f"  {label}: {one:,.1f} documents/s in one process, {two:,.1f} with a pool of 2 ({two / one:.2f}x)")


if __name__ == "__main__":
    main()
