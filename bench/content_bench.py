"""Content extraction throughput: the typed view of a 10 KB invoice (and 1 MB for scale),
from the tree already parsed (what the gateway does at storage), and parse + extract."""

from __future__ import annotations

import time

from bench.as4_bench import invoice_of_size
from gateway.documents.business import BusinessDocument
from gateway.documents.content import content_row, extract


def _rate(step: object, seconds: float, rounds: int = 3) -> float:
    """Documents per second: the best of a few rounds (a shared machine slows some down)."""
    assert callable(step)
    step()
    best = 0.0
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        deadline = start + seconds / rounds
        while time.perf_counter() < deadline:
            step()
            count += 1
        best = max(best, count / (time.perf_counter() - start))
    return best


def main() -> None:
    print("Content extraction (typed view + its row: listing fields and JSON)")
    for label, size, seconds in (("10 KB invoice", 10_000, 3.0), ("1 MB invoice", 1_000_000, 3.0)):
        data = invoice_of_size(size)
        parsed = BusinessDocument.parse(data)
        lines = len(extract(parsed).lines)
        view_only = _rate(lambda p=parsed: extract(p), seconds)
        from_tree = _rate(lambda p=parsed: content_row(extract(p)), seconds)
        with_parse = _rate(lambda d=data: content_row(extract(BusinessDocument.parse(d))), seconds)
        print(
            f"  {label} ({len(data):,} bytes, {lines} lines): {from_tree:,.0f} documents/s from the parsed tree "
            f"({1000 / from_tree:.3f} ms each; the view alone {view_only:,.0f}/s), {with_parse:,.0f}/s with parsing"
        )


if __name__ == "__main__":
    main()
