"""Prometheus metrics in the text exposition format, without a client library: counters and
histograms updated in-process, gauges read from PostgreSQL at scrape time."""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import UTC, datetime

from aiohttp import web

__all__ = ["METRICS", "Gauges", "Metrics", "certificate_gauge"]

# name -> (help text, [(labels, value), ...])
Gauges = dict[str, tuple[str, list[tuple[dict[str, str], float]]]]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    escaped = (f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in pairs)
    return "{" + ",".join(escaped) + "}"


class Metrics:
    """One registry per gateway process (kept on the application, not global)."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(lambda: defaultdict(float))
        self.histograms: dict[str, dict[tuple[tuple[str, str], ...], list[float]]] = defaultdict(dict)
        self.help: dict[str, str] = {}

    def inc(self, name: str, help_text: str, amount: float = 1.0, **labels: str) -> None:
        self.help[name] = help_text
        self.counters[name][tuple(sorted(labels.items()))] += amount

    def observe(self, name: str, help_text: str, seconds: float, **labels: str) -> None:
        self.help[name] = help_text
        key = tuple(sorted(labels.items()))
        series = self.histograms[name].setdefault(key, [0.0] * (len(_BUCKETS) + 2))  # buckets, sum, count
        index = bisect.bisect_left(_BUCKETS, seconds)
        for i in range(index, len(_BUCKETS)):
            series[i] += 1
        series[-2] += seconds
        series[-1] += 1

    def render(self, gauges: dict[str, tuple[str, list[tuple[dict[str, str], float]]]]) -> str:
        lines: list[str] = []
        for name, series in sorted(self.counters.items()):
            lines += [f"# HELP {name} {self.help[name]}", f"# TYPE {name} counter"]
            lines += [f"{name}{_labels(key)} {value:g}" for key, value in sorted(series.items())]
        for name, hists in sorted(self.histograms.items()):
            lines += [f"# HELP {name} {self.help[name]}", f"# TYPE {name} histogram"]
            for key, values in sorted(hists.items()):
                for bound, count in zip(_BUCKETS, values, strict=False):
                    lines.append(f"{name}_bucket{_labels((*key, ('le', f'{bound:g}')))} {count:g}")
                lines.append(f"{name}_bucket{_labels((*key, ('le', '+Inf')))} {values[-1]:g}")
                lines.append(f"{name}_sum{_labels(key)} {values[-2]:.6f}")
                lines.append(f"{name}_count{_labels(key)} {values[-1]:g}")
        for name, (help_text, samples) in sorted(gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines += [f"{name}{_labels(tuple(sorted(labels.items())))} {value:g}" for labels, value in samples]
        return "\n".join(lines) + "\n"


def certificate_gauge(certs: dict[str, object]) -> Gauges:
    now = datetime.now(UTC)
    samples = [
        ({"certificate": name}, (cert.not_valid_after_utc - now).total_seconds() / 86400)  # type: ignore[attr-defined]
        for name, cert in certs.items()
    ]
    return {"peppol_certificate_expiry_days": ("Days until each of our certificates expires", samples)}


METRICS = web.AppKey("metrics", Metrics)
