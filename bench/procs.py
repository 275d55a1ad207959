"""CPU time and memory of the processes a benchmark runs, read from /proc: a gateway and its
validation workers apart, a PostgreSQL cluster as its postmaster and backends. CPU of a child
that exited is not lost: its parent reaped it, so it is in the parent's cutime/cstime."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def own_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process's own threads; 0 when it is gone."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS if fields else 0.0


def reaped_cpu(pid: int) -> float:
    """CPU seconds of the children ``pid`` has waited for (cutime + cstime)."""
    fields = _stat(pid)
    return (int(fields[13]) + int(fields[14])) / TICKS if fields else 0.0


def children(pid: int) -> list[int]:
    """Live direct children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children(child))
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``'s descendants, live and exited (not ``pid``'s own threads)."""
    return reaped_cpu(pid) + sum(own_cpu(c) + reaped_cpu(c) for c in descendants(pid))


def postmaster(data_dir: Path) -> int | None:
    """The running postmaster of a cluster's data directory."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cluster_cpu(data_dir: Path) -> float:
    """CPU seconds of one PostgreSQL cluster: postmaster, backends and the backends gone."""
    pid = postmaster(data_dir)
    return 0.0 if pid is None else own_cpu(pid) + tree_cpu(pid)


def cluster_pids(data_dir: Path) -> list[int]:
    pid = postmaster(data_dir)
    return [] if pid is None else [pid, *descendants(pid)]


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) in KiB; PSS shares each shared page among its users, so it adds up across
    processes (PostgreSQL's shared buffers are in every backend's RSS)."""
    rss = pss = None
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except (OSError, ValueError):
        return None
    return (rss, pss) if rss is not None and pss is not None else None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def validation_workers(gateway: int) -> list[int]:
    """The gateway's process-pool workers (spawned: ``multiprocessing.spawn`` on their command
    line), not multiprocessing's resource tracker."""
    return [c for c in descendants(gateway) if "spawn_main" in cmdline(c)]


@dataclass(frozen=True)
class Group:
    """A named set of processes, found again at each reading (backends come and go)."""

    name: str
    cpu: Callable[[], float]
    pids: Callable[[], list[int]]
    proportional: bool = False  # memory as PSS (a cluster sharing memory), else RSS


def gateway_groups(label: str, pid: int) -> list[Group]:
    """A gateway's own process, and its validation workers (with the children it reaped)."""
    return [
        Group(label, lambda: own_cpu(pid), lambda: [pid]),
        Group(f"{label} validation workers", lambda: tree_cpu(pid), lambda: validation_workers(pid)),
    ]


def postgres_group(data_dir: Path) -> Group:
    return Group("PostgreSQL", lambda: cluster_cpu(data_dir), lambda: cluster_pids(data_dir), proportional=True)


def cpu_by_group(groups: Iterable[Group]) -> dict[str, float]:
    return {g.name: g.cpu() for g in groups}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


@dataclass(frozen=True)
class MemorySample:
    """MiB per group (RSS, or PSS for a group that shares memory), and per process of each."""

    mb: dict[str, float]
    by_pid: dict[str, dict[int, float]]

    @property
    def processes(self) -> dict[str, int]:
        return {name: len(pids) for name, pids in self.by_pid.items()}


def memory_sample(groups: Iterable[Group]) -> MemorySample:
    mb: dict[str, float] = {}
    by_pid: dict[str, dict[int, float]] = {}
    for g in groups:
        mine: dict[int, float] = {}
        for pid in g.pids():
            m = memory_kb(pid)
            if m is not None:
                mine[pid] = (m[1] if g.proportional else m[0]) / 1024
        mb[g.name] = sum(mine.values())
        by_pid[g.name] = mine
    return MemorySample(mb, by_pid)


def growth_percent(start: MemorySample, end: MemorySample, name: str, *, same_processes: bool) -> float | None:
    """How much a group's memory grew from ``start`` to ``end``, in percent. With
    ``same_processes`` only the processes alive at both count (a worker started in between is
    not growth of the others); None when there is nothing to compare."""
    a, b = start.by_pid.get(name, {}), end.by_pid.get(name, {})
    if same_processes:
        common = a.keys() & b.keys()
        before, after = sum(a[p] for p in common), sum(b[p] for p in common)
    else:
        before, after = sum(a.values()), sum(b.values())
    return None if before <= 0 else (after - before) / before * 100
