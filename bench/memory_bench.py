"""Memory over a long run: the end-to-end network of bench.e2e_bench (AP-A REST API -> AS4 ->
AP-B mailbox, both `peppol-gateway serve` processes and PostgreSQL on this machine), as deployed
by default: AP-A validates on submission in its process pool, and AP-B's receiving company has
inbound validation on ("warn"), so AP-B's pool works too.

Resident memory of every process: AP-A, AP-B, each one's validation workers (together), and the
PostgreSQL cluster (PSS summed over its processes, since every backend maps the same shared
buffers). Read at rest after start, every second under load (the peak is "under load"), at every
``--every`` documents committed to AP-B's mailbox (the series), and at rest after the run. The
growth is from the second point of the series to the last (the first point sees caches and pools
still filling); our processes count against the flatness bound, PostgreSQL is shown apart (its
shared buffers fill as the database grows, up to their size).

    python -m bench.memory_bench --docs 10000 [--every 1000] [--in-flight 16] [--no-inbound-validation]

`make bench` runs a shorter one (2,000 documents, every 400). It prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import procs
from bench.e2e_bench import Network, bench_invoice, rest_submitter
from bench.report import Figure
from gateway.inbound.states import ProcessingState

FLAT_PERCENT = 5.0
OURS = ("AP-A", "AP-A validation workers", "AP-B", "AP-B validation workers")
KEYS = {
    "AP-A": "memory.ap_a",
    "AP-A validation workers": "memory.ap_a_pool",
    "AP-B": "memory.ap_b",
    "AP-B validation workers": "memory.ap_b_pool",
    "PostgreSQL": "memory.postgres",
}


@dataclass
class Series:
    """Memory at every ``every`` documents, the peaks in between, and the moments at rest."""

    every: int
    points: list[tuple[int, float, procs.MemorySample]] = field(default_factory=list)  # (docs, seconds, sample)
    peak: dict[str, float] = field(default_factory=dict)
    rest_start: procs.MemorySample | None = None
    rest_end: procs.MemorySample | None = None

    def observe(self, sample: procs.MemorySample) -> None:
        for name, mb in sample.mb.items():
            self.peak[name] = max(self.peak.get(name, 0.0), mb)

    def growth(self, name: str) -> float | None:
        """Percent from the second point of the series to the last (None with fewer than three
        points); for our processes only those alive at both points."""
        if len(self.points) < 3:
            return None
        return procs.growth_percent(self.points[1][2], self.points[-1][2], name, same_processes=name != "PostgreSQL")

    def changed(self, name: str) -> str:
        """Processes of a group that started or ended between the second point and the last."""
        if len(self.points) < 3:
            return ""
        a, b = self.points[1][2].by_pid.get(name, {}), self.points[-1][2].by_pid.get(name, {})
        started, ended = len(b.keys() - a.keys()), len(a.keys() - b.keys())
        parts = [f"{started} started" if started else "", f"{ended} ended" if ended else ""]
        return ", ".join(p for p in parts if p)


def print_series(series: Series, names: list[str]) -> None:
    width = max(len(n) for n in names)
    print(f"  RSS in MB (PostgreSQL: PSS of all its processes); every {series.every} documents committed on AP-B")
    head = "".join(f"{docs:>8}" for docs, _, _ in series.points)
    print(f"    {'documents':<{width}} {head}")
    for name in names:
        row = "".join(f"{p.mb.get(name, 0.0):>8.1f}" for _, _, p in series.points)
        g = series.growth(name)
        changed = series.changed(name) if name != "PostgreSQL" else ""
        tail = f"   growth {g:+.1f} %" if g is not None else ""
        tail += f" (of the processes at both ends; {changed} in between)" if changed else ""
        print(f"    {name:<{width}} {row}{tail}")


async def _run(tmp: Path, docs: int, every: int, in_flight: int, inbound_validation: bool) -> list[Figure]:
    net = Network(tmp)
    try:
        await net.start(validate_on_submit=True, prefix="mem")
        if inbound_validation:
            await net.pool_b.execute("UPDATE companies SET inbound_validation = 'warn' WHERE id = $1", net.receiver)
        groups = net.groups()
        names = [g.name for g in groups]
        series = Series(every)
        await asyncio.sleep(2)
        series.rest_start = procs.memory_sample(groups)
        invoice = bench_invoice()
        start_id = await net.pool_b.fetchval("SELECT coalesce(max(id), 0) FROM inbound_messages")
        cpu_before = procs.cpu_by_group(groups)
        began = time.perf_counter()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight * 2)) as session:
            submit = await rest_submitter(session, net, invoice, "mem")
            queue = iter(range(docs))
            done = asyncio.Event()

            async def submitter() -> None:
                for i in queue:
                    await submit(i)

            async def sampler() -> None:
                """Every second the peaks; at each ``every`` documents a point of the series."""
                next_point = every
                while not done.is_set():
                    count = await net.pool_b.fetchval("SELECT count(*) FROM inbound_messages WHERE id > $1", start_id)
                    sample = procs.memory_sample(groups)
                    series.observe(sample)
                    while count >= next_point and next_point <= docs:
                        series.points.append((next_point, time.perf_counter() - began, sample))
                        print(
                            f"  {next_point:>6} documents, {time.perf_counter() - began:6.0f} s: "
                            + ", ".join(f"{n} {sample.mb[n]:.0f}" for n in names),
                            flush=True,
                        )
                        next_point += every
                    if next_point > docs:
                        return
                    await asyncio.sleep(1.0)

            watcher = asyncio.create_task(sampler())
            try:
                await asyncio.gather(*(submitter() for _ in range(in_flight)))
                await asyncio.wait_for(asyncio.shield(watcher), timeout=900)
            finally:
                done.set()
                watcher.cancel()
        elapsed = time.perf_counter() - began
        cpu = procs.cpu_delta(cpu_before, procs.cpu_by_group(groups))
        pending = "SELECT count(*) FROM inbound_messages WHERE id > $1 AND processing = $2"
        deadline = time.monotonic() + 300
        while (
            await net.pool_b.fetchval(pending, start_id, ProcessingState.PENDING.value) and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.5)
        await asyncio.sleep(5)
        series.rest_end = procs.memory_sample(groups)
        print(
            f"  {docs} documents in {elapsed:.0f} s ({docs / elapsed:.1f}/s, {in_flight} submitting at once); CPU per "
            "document " + " + ".join(f"{n} {cpu[n] / docs * 1000:.2f}" for n in names) + " ms"
        )
        print_series(series, names)
        assert series.rest_start is not None
        for name in names:
            workers = series.rest_end.processes.get(name, 0)
            print(
                f"    {name}: at rest after start {series.rest_start.mb[name]:.0f} MB, under load at most "
                f"{series.peak.get(name, 0.0):.0f} MB, at rest after the run {series.rest_end.mb[name]:.0f} MB"
                + (f" ({workers} processes)" if "workers" in name or name == "PostgreSQL" else "")
            )
        return figures(series, names, docs)
    finally:
        await net.stop()


def figures(series: Series, names: list[str], docs: int) -> list[Figure]:
    """The summary's figures: RSS under load per process group and the worst growth of ours."""
    assert series.rest_start is not None and series.rest_end is not None
    out = []

    def at_rest(sample: procs.MemorySample, name: str) -> str:
        if not sample.processes.get(name):
            return "none running"
        return f"{sample.mb[name]:.0f} MB" + (f" in {sample.processes[name]} processes" if "workers" in name else "")

    for name in names:
        note = (
            f"at rest: {at_rest(series.rest_start, name)} after start, {at_rest(series.rest_end, name)} after the run"
        )
        out.append(Figure(KEYS[name], value=series.peak.get(name), unit="MB", note=note))
    grown = {n: series.growth(n) for n in names}
    ours = {n: g for n, g in grown.items() if n in OURS and g is not None}
    if not ours:
        out.append(Figure("memory.growth", missing=f"fewer than three points in the series ({docs} documents)"))
        return out
    worst = max(ours, key=lambda n: ours[n])
    first, last = series.points[1][0], series.points[-1][0]
    pg = grown.get("PostgreSQL")
    note = (
        f"{worst}, from the {first:,}th to the {last:,}th document; "
        + ", ".join(f"{n} {g:+.1f} %" for n, g in ours.items())
        + (f"; PostgreSQL {pg:+.1f} % (shared buffers filling, not counted)" if pg is not None else "")
    )
    out.append(Figure("memory.growth", value=ours[worst], note=note))
    return out


def main(docs: int = 10_000, every: int = 1000, in_flight: int = 16, inbound_validation: bool = True) -> list[Figure]:
    print(
        f"Memory over {docs:,} documents end to end (AP-A validating on submission, "
        f"AP-B inbound validation {'on' if inbound_validation else 'off'})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_run(Path(tmp), docs, every, in_flight, inbound_validation))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1000, help="a point of the series every N documents")
    parser.add_argument("--in-flight", type=int, default=16, help="concurrent submissions")
    parser.add_argument("--no-inbound-validation", action="store_true", help="AP-B stores without validating")
    args = parser.parse_args()
    from gateway.core.logs import configure_logging

    configure_logging("console", "warning")
    main(args.docs, args.every, args.in_flight, not args.no_inbound_validation)
