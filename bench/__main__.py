"""Run every benchmark, then print one summary: each target of the performance plan beside our
figure and the peers' figures, the ratios, what could not be measured and why, and the machine's
load while it ran. A bench that fails is reported as such; the others still run.

    python -m bench [--only as4_bench,e2e_bench] [--skip api_bench,scale_bench]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
import traceback
from typing import Any

from bench.report import PLAN, Figure, Machine, complete, cpu_count, format_summary, load_average
from gateway.core.logs import configure_logging

# (module in bench/, the arguments `make bench` gives its main()); an absent module is reported so.
BENCHES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("as4_bench", {}),
    ("large_message_bench", {}),
    ("smp_bench", {}),
    ("e2e_bench", {}),
    ("memory_bench", {"docs": 2000, "every": 400}),
    ("scale_bench", {}),
    ("api_bench", {}),
    ("circuit_bench", {}),
    ("ratelimit_bench", {}),
    ("validation_bench", {}),
    ("phive_bench", {"argv": []}),  # its own argument parser: none of ours
    ("content_bench", {}),
    ("phase4_bench", {"count": 400, "warmup": 2000}),  # its own defaults: 600, 3,000
)


def figures_of(name: str, result: object) -> tuple[list[Figure], str | None]:
    """A bench's figures, and None, or why there are none to take."""
    if result is None:
        return [], f"{name} reports no figures (its main() returns None)"
    if isinstance(result, list | tuple) and all(isinstance(f, Figure) for f in result):
        return list(result), None
    return [], f"{name}.main() returned {type(result).__name__}, not a list of bench.report.Figure"


def run_one(name: str, kwargs: dict[str, Any]) -> tuple[list[Figure], str | None]:
    if importlib.util.find_spec(f"bench.{name}") is None:
        return [], f"bench/{name}.py is not on this branch"
    try:
        return figures_of(name, importlib.import_module(f"bench.{name}").main(**kwargs))
    except Exception as exc:  # one bench failing must not hide the others' figures
        traceback.print_exc()
        text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        return [], f"{name} failed: {text[:300]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", default="", help="comma-separated bench modules to run (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated bench modules to leave out")
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    configure_logging("console", "warning")
    started, load_start = time.monotonic(), load_average()
    loads = [load_start]
    reported: list[Figure] = []
    outcomes: dict[str, str | None] = {}
    durations: list[str] = []
    for name, kwargs in BENCHES:
        if (only and name not in only) or name in skip:
            outcomes[name] = f"{name} not selected (--only/--skip)"
            continue
        began = time.monotonic()
        figures, outcomes[name] = run_one(name, kwargs)
        reported += figures
        loads.append(load_average())
        durations.append(f"{name.removesuffix('_bench')} {time.monotonic() - began:.0f} s")
        sys.stdout.flush()
    load_end = load_average()
    machine = Machine(cpu_count(), load_start, load_end, max([*loads, load_end]), time.monotonic() - started)
    print()
    print("Time per bench: " + ", ".join(durations))
    print(format_summary(complete(PLAN, reported, outcomes), machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
