"""Horizontal scale on this machine: the end-to-end burst (AP-A submission → AP-B mailbox) with
1, 2 and 4 gateway processes per access point, all on one PostgreSQL. AP-A's processes share
the outbound queue; AP-B's share one port (SO_REUSEPORT). Prints documents/s and CPU per
document for each."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import asyncpg

from bench.e2e_bench import (
    ZONE,
    _cpu_seconds,
    _db,
    _env,
    _port,
    _round,
    _start,
    bench_document,
    receiving_company,
)
from bench.procs import cluster_cpu
from gateway.core.migrate import apply_migrations
from gateway.dev.dns import KnotDns
from gateway.dev.pki import create_dev_pki
from gateway.dev.postgres import EmbeddedPostgres


async def _measure(
    tmp: Path, processes: int, count: int, pki_dir: Path, admin: str, knot: KnotDns, data_dir: Path
) -> None:
    conn = await asyncpg.connect(admin)
    names = (f"scale_a_{processes}", f"scale_b_{processes}")
    for name in names:
        await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dsn_a, dsn_b = (_db(admin, n) for n in names)
    for dsn in (dsn_a, dsn_b):
        c = await asyncpg.connect(dsn)
        await apply_migrations(c)
        await c.close()
    port_b = _port()
    pool_a = await asyncpg.create_pool(dsn_a, min_size=2, max_size=20)
    pool_b = await asyncpg.create_pool(dsn_b, min_size=1, max_size=4)
    assert pool_a is not None and pool_b is not None
    await receiving_company(pool_b, knot, port_b)
    procs = []
    try:
        for _ in range(processes):
            env_b = _env(pki_dir, "ap2", dsn_b, port_b, knot, 0)
            env_b["PEPPOL_HTTP_REUSE_PORT"] = "true"
            env_b["PEPPOL_REPORTING_SCHEDULE"] = "false"
            procs.append(_start(env_b))
        for _ in range(processes):
            env_a = _env(pki_dir, "ap1", dsn_a, _port(), knot, max(2, 16 // processes))
            env_a["PEPPOL_REPORTING_SCHEDULE"] = "false"
            procs.append(_start(env_a))
        derived = bench_document()
        await _round(pool_a, pool_b, derived, 40, None)  # warm-up
        pids = [p.pid for p in procs]
        before = _cpu_seconds(pids) + cluster_cpu(data_dir)
        elapsed, latencies = await _round(pool_a, pool_b, derived, count, None)
        cpu = _cpu_seconds(pids) + cluster_cpu(data_dir) - before
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        print(
            f"  {processes} process(es) per access point: {count / elapsed:6.1f} documents/s, "
            f"CPU {cpu / count * 1000:.2f} ms/document, burst p99 {p99:.0f} ms"
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        await pool_a.close()
        await pool_b.close()


async def _run(tmp: Path, count: int) -> None:
    pki = create_dev_pki(tmp / "pki")
    postgres = EmbeddedPostgres(tmp / "pg", durable=False)
    admin = postgres.start()
    knot = KnotDns(tmp / "dns", ZONE)
    knot.start()
    try:
        for processes in (1, 2, 4):
            await _measure(tmp, processes, count, pki.directory, admin, knot, postgres.data)
    finally:
        knot.stop()
        postgres.stop()


def main(count: int = 600) -> None:
    print(f"Horizontal scale: end-to-end burst of {count} documents, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp), count))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 600)
