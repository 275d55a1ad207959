"""How the memory bench reads growth: only the processes alive at both ends count for a gateway
(a pool worker spawned later is not growth), a shared cluster is compared as a whole."""

from __future__ import annotations

from bench.__main__ import figures_of
from bench.procs import MemorySample, growth_percent
from bench.report import Figure


def _sample(by_pid: dict[str, dict[int, float]]) -> MemorySample:
    return MemorySample({name: sum(p.values()) for name, p in by_pid.items()}, by_pid)


def test_a_worker_started_in_between_is_not_growth() -> None:
    start = _sample({"workers": {1: 260.0}})
    end = _sample({"workers": {1: 265.2, 2: 254.8}})
    assert round(growth_percent(start, end, "workers", same_processes=True) or 0, 1) == 2.0
    assert round(growth_percent(start, end, "workers", same_processes=False) or 0, 1) == 100.0


def test_nothing_to_compare() -> None:
    start = _sample({"workers": {}})
    end = _sample({"workers": {2: 255.0}})
    assert growth_percent(start, end, "workers", same_processes=True) is None


def test_a_bench_that_reports_nothing_says_so() -> None:
    assert figures_of("x_bench", None) == ([], "x_bench reports no figures (its main() returns None)")
    assert figures_of("x_bench", {"a": 1})[1] == "x_bench.main() returned dict, not a list of bench.report.Figure"
    assert figures_of("x_bench", [Figure("k", value=1.0)]) == ([Figure("k", value=1.0)], None)
