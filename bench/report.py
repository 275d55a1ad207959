"""The figures every benchmark hands back, and the one summary `python -m bench` prints at the
end: each target of the performance plan beside our figure and the peers', the ratios, what could
not be measured and why, and how loaded the machine was while it ran.

A bench's ``main()`` returns a list of :class:`Figure`. Figures are matched to the plan (and to
each other) by ``key``, so one bench can report our figure and another a peer's figure for the
same key: ``Figure("validation.cpu_per_doc", peers=(Peer("phive", 4.1),))`` from a phive bench
lands beside our validation figure. Values are plain numbers in the unit the plan names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """A bound on a figure: an absolute ``value``, or ``factor`` times a peer's figure."""

    value: float | None = None
    peer: str | None = None
    factor: float = 1.0

    def bound(self, peers: Sequence[Peer]) -> float | None:
        if self.peer is None:
            return self.value
        for p in peers:
            if p.name == self.peer and p.value is not None:
                return p.value * self.factor
        return None

    def text(self, unit: str, higher_is_better: bool) -> str:
        op = ">=" if higher_is_better else "<="
        if self.peer is None:
            return f"{op} {number(self.value)} {unit}".rstrip()
        return f"{op} {self.factor:g}x {self.peer}"


@dataclass(frozen=True)
class Peer:
    """Another implementation's figure for the same thing, in the same unit; ``missing`` says
    why there is no value."""

    name: str
    value: float | None = None
    missing: str = ""
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """One measured quantity. ``missing`` says why ``value`` is None; ``note`` what it counts."""

    key: str
    name: str = ""
    value: float | None = None
    unit: str = ""
    target: Target | None = None
    peers: tuple[Peer, ...] = ()
    missing: str = ""
    note: str = ""
    higher_is_better: bool = False


@dataclass(frozen=True)
class Planned:
    """A figure the summary must show, which bench measures it (``source``, a module name in
    bench/) and which bench measures each expected peer."""

    figure: Figure
    source: str
    peer_sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    title: str
    figures: tuple[Planned, ...]


def _p(
    key: str, name: str, unit: str, source: str, *, target: Target | None = None, higher: bool = False,
    peers: Mapping[str, str] | None = None, note: str = "",
) -> Planned:  # fmt: skip
    return Planned(
        Figure(key, name, unit=unit, target=target, higher_is_better=higher, note=note,
               peers=tuple(Peer(n) for n in (peers or {}))),
        source, dict(peers or {}),
    )  # fmt: skip


# The performance plan's targets, and the peers each figure is compared with.
PLAN: tuple[Section, ...] = (
    Section(
        "AS4 codec, ~10 KB invoice, one core (p50 wall time of one call)",
        (
            _p(
                "as4.rsa_private_op",
                "RSA-2048 private-key operation (floor)",
                "ms",
                "as4_bench",
                note="one in every build (signature) and every parse (key unwrap)",
            ),
            _p(
                "as4.build_10k",
                "build: gzip + sign + encrypt",
                "ms",
                "as4_bench",
                target=Target(0.6),
                peers={"as4 pkg": "as4_bench", "peppol-py": "as4_bench"},
            ),
            _p(
                "as4.parse_10k",
                "parse: decrypt + verify + gunzip",
                "ms",
                "as4_bench",
                target=Target(0.8),
                peers={"as4 pkg": "as4_bench"},
            ),
        ),
    ),
    Section(
        "End to end: AP-A REST submission -> AS4 -> AP-B mailbox committed",
        (
            _p("e2e.cpu_per_doc", "CPU per document, all processes", "ms", "e2e_bench", target=Target(3.2)),
            _p("e2e.cpu_ap_a", "  of which AP-A", "ms", "e2e_bench"),
            _p("e2e.cpu_ap_b", "  of which AP-B", "ms", "e2e_bench"),
            _p("e2e.cpu_postgres", "  of which PostgreSQL", "ms", "e2e_bench"),
            _p("e2e.burst_rate", "burst rate", "docs/s", "e2e_bench", target=Target(600), higher=True),
            _p("e2e.paced_p50", "latency p50 at half the burst rate", "ms", "e2e_bench"),
            _p("e2e.paced_p99", "latency p99 at half the burst rate", "ms", "e2e_bench", target=Target(100)),
            _p(
                "e2e.validated_rate",
                "validated submission, burst rate",
                "docs/s",
                "e2e_bench",
                target=Target(200),
                higher=True,
            ),
            _p("e2e.validated_cpu", "validated submission, CPU per document", "ms", "e2e_bench"),
        ),
    ),
    Section(
        "AS4 beside phase4 (gateway process alone, ~10 KB, receipts checked)",
        (
            _p("phase4.send_cpu", "sender CPU per message", "ms", "phase4_bench", peers={"phase4": "phase4_bench"}),
            _p(
                "phase4.receive_cpu", "receiver CPU per message", "ms", "phase4_bench", peers={"phase4": "phase4_bench"}
            ),
        ),
    ),
    Section(
        "Validation: UBL XSD + EN 16931 + Peppol BIS, ~10 KB invoice",
        (
            _p(
                "validation.cpu_per_doc",
                "CPU per document, one warm process",
                "ms",
                "validation_bench",
                target=Target(peer="phive", factor=1.5),
                peers={"phive": "phive_bench"},
            ),
        ),
    ),
    Section(
        "Memory (RSS)",
        (
            _p("memory.growth", "RSS growth over the run, worst process", "%", "memory_bench", target=Target(5.0)),
            _p("memory.ap_a", "AP-A under load", "MB", "memory_bench"),
            _p("memory.ap_a_pool", "AP-A validation workers under load", "MB", "memory_bench"),
            _p("memory.ap_b", "AP-B under load", "MB", "memory_bench"),
            _p("memory.ap_b_pool", "AP-B validation workers under load", "MB", "memory_bench"),
            _p("memory.postgres", "PostgreSQL under load", "MB", "memory_bench"),
        ),
    ),
)


def planned(plan: Sequence[Section] = PLAN) -> list[Planned]:
    return [p for section in plan for p in section.figures]


def merge(figures: Iterable[Figure]) -> list[Figure]:
    """Figures with the same key made into one (first seen order): the first name, unit, target
    and note, the last value reported, every peer (a value beats a missing one), every reason."""
    merged: dict[str, Figure] = {}
    for f in figures:
        have = merged.get(f.key)
        if have is None:
            merged[f.key] = f
            continue
        peers = {p.name: p for p in have.peers}
        for p in f.peers:
            old = peers.get(p.name)
            if old is None:
                peers[p.name] = p
            elif p.value is not None:
                peers[p.name] = replace(p, note=p.note or old.note)
            elif old.value is None and p.missing:
                peers[p.name] = replace(old, missing=p.missing)
        value = f.value if f.value is not None else have.value
        reasons = [m for m in (have.missing, f.missing) if m]
        merged[f.key] = replace(
            have,
            name=have.name or f.name,
            unit=have.unit or f.unit,
            target=have.target or f.target,
            value=value,
            missing="" if value is not None else "; ".join(reasons),
            note=have.note or f.note,
            peers=tuple(peers.values()),
            higher_is_better=have.higher_is_better or f.higher_is_better,
        )
    return list(merged.values())


def complete(
    plan: Sequence[Section], reported: Iterable[Figure], outcomes: Mapping[str, str | None]
) -> list[tuple[str, list[Figure]]]:
    """The plan's figures, sections in order, filled from what the benches reported; anything
    left without a value says why. ``outcomes`` maps a bench to None when it ran and reported,
    or to why it did not (failed, absent, not selected). Figures outside the plan come last."""
    reported = list(reported)
    keys = {p.figure.key for p in planned(plan)}

    def why(source: str) -> str:
        reason = outcomes.get(source, f"{source} was not run")
        return reason if reason is not None else f"{source} ran but did not report it"

    sections: list[tuple[str, list[Figure]]] = []
    for section in plan:
        rows = []
        for p in section.figures:
            own = [f for f in reported if f.key == p.figure.key]
            f = merge([p.figure, *own])[0]
            if f.value is None and not f.missing:
                f = replace(f, missing=why(p.source))
            peers = tuple(
                peer if peer.value is not None or peer.missing
                else replace(peer, missing=why(p.peer_sources.get(peer.name, p.source)))
                for peer in f.peers
            )  # fmt: skip
            rows.append(replace(f, peers=peers))
        sections.append((section.title, rows))
    extra = merge(f for f in reported if f.key not in keys)
    if extra:
        sections.append(("Other figures", extra))
    return sections


@dataclass(frozen=True)
class Machine:
    """The conditions of the run: CPUs and the 1-minute load average at the start and the end
    (and the highest seen between benches)."""

    cpus: int
    load_start: float
    load_end: float
    load_max: float
    seconds: float


def load_average() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def number(value: float | None) -> str:
    """Three significant figures or so; thousands separated."""
    if value is None:
        return "-"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def status(f: Figure) -> tuple[str, str]:
    """(ours / target, met | not met | ...) of a figure with a target."""
    if f.target is None:
        return "", ""
    bound = f.target.bound(f.peers)
    if f.value is None:
        return "", "-"
    if bound is None:
        return "", "no target"
    ratio = f.value / bound if bound else float("inf")
    met = f.value >= bound if f.higher_is_better else f.value <= bound
    return f"{ratio:.2f}", "met" if met else "not met"


def _peer_cell(f: Figure, p: Peer) -> str:
    if p.value is None:
        return f"{p.name} not measured"
    ratio = f"{f.value / p.value:.2f}" if f.value is not None and p.value else "-"
    return f"{p.name} {number(p.value)} ({ratio})"


def format_summary(sections: Sequence[tuple[str, Sequence[Figure]]], machine: Machine) -> str:
    """The summary table: one row per figure, peers beside it, reasons and notes below it."""
    name_w, ours_w, target_w, ratio_w, status_w = 44, 14, 15, 8, 9
    head = (
        f"  {'figure':<{name_w}} {'ours':>{ours_w}} {'target':>{target_w}} {'ours/tgt':>{ratio_w}} "
        f"{'status':<{status_w}} peers: value (ours/peer)"
    )
    lines = [
        "=" * 110,
        "Summary: each target beside our figure and the peers' (same unit; a ratio is ours divided by theirs)",
        f"  machine: {machine.cpus} CPUs; 1-min load average {machine.load_start:.2f} at start, "
        f"{machine.load_end:.2f} at end, {machine.load_max:.2f} at most between benches; "
        f"{machine.seconds / 60:.1f} min in all",
        head,
    ]
    for title, figures in sections:
        lines.append(f"  {title}")
        for f in figures:
            ours = f"{number(f.value)} {f.unit}".strip() if f.value is not None else "not measured"
            target = f.target.text(f.unit, f.higher_is_better) if f.target else ""
            ratio, state = status(f)
            peers = "; ".join(_peer_cell(f, p) for p in f.peers)
            row = (
                f"    {f.name:<{name_w - 2}} {ours:>{ours_w}} {target:>{target_w}} {ratio:>{ratio_w}} "
                f"{state:<{status_w}} {peers}"
            )
            lines.append(row.rstrip())
            same = [p.name for p in f.peers if f.value is None and p.value is None and p.missing == f.missing]
            if f.value is None:
                who = " and ".join(["ours", *same]) if same else ""
                lines.append(f"      not measured{f' ({who})' if who else ''}: {f.missing or 'no reason given'}")
            for p in f.peers:
                if p.value is None and p.name not in same:
                    lines.append(f"      {p.name} not measured: {p.missing or 'no reason given'}")
                elif p.value is not None and p.note:
                    lines.append(f"      {p.name}: {p.note}")
            if f.note:
                lines.append(f"      ({f.note})")
    lines.append("=" * 110)
    return "\n".join(lines)
