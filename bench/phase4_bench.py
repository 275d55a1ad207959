"""phase4 (com.helger.phase4 4.4.1, the reference Java Peppol AS4 implementation) beside us, in one
run, on the same ~10 KB invoice (tests/support/data/invoice-bis3.xml padded with invoice lines):

  (a) phase4's Peppol sender  -> our receiver (`peppol-gateway serve`)
  (b) our sender (the outbound workers of `peppol-gateway serve`) -> phase4's AS4 receiver
  (c) our sender -> our receiver

Each direction first sends a warm-up batch that is discarded (the JVM's JIT, connection pools,
caches), then a measured batch with the same number of messages in flight on both sides. Every
message counts only once its signed receipt was checked, non-repudiation digests included.
Figures: messages per second over the measured batch, and CPU per message of each process
(utime + stime from /proc/<pid>/stat over the measured window), PostgreSQL (our two gateways'
cluster) shown apart. phase4's peer keeps what it receives in files, with no database.

Run: ``python -m bench.phase4_bench [COUNT] [--warmup N] [--in-flight N]``; `make bench` runs it
too. It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

import smp
from bench.as4_bench import invoice_of_size
from bench.e2e_bench import _db, _env, _port, _start
from gateway.core.migrate import apply_migrations
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki, create_dev_pki
from gateway.dev.postgres import EmbeddedPostgres
from gateway.directory import queries as directory_queries
from gateway.outbound.submission import Derived, derive_submission, submit_document
from tests.support.as4 import RECEIVER
from tests.support.phase4 import PeerBuildError, Phase4Peer, ensure_peer_built

ZONE = "sml.phase4-bench.test"
TICKS = os.sysconf("SC_CLK_TCK")
# Server JIT as deployed (the tests' quick-start flags stop at C1).
BENCH_JVM_FLAGS = ("-Xshare:auto",)


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids``; a process gone counts as 0."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def jvm_threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of a JVM's live JIT compiler and garbage collector threads. Threads that
    ended are left out, so these are lower bounds; the rest of the process is the work itself."""
    kinds = {"jit": 0.0, "gc": 0.0}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = "jit" if "CompilerThre" in comm else "gc" if comm.startswith(("GC ", "G1 ")) else None
        if kind is not None:
            kinds[kind] += (int(fields[11]) + int(fields[12])) / TICKS
    return kinds


def cluster_pids(data_dir: Path) -> list[int]:
    """The postmaster of this benchmark's cluster and its children (other clusters on the
    machine are not counted)."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == postmaster:
                pids.append(int(entry.name))
    return pids


@dataclass(frozen=True)
class Figures:
    label: str
    count: int
    seconds: float
    sender_cpu: float
    receiver_cpu: float
    postgres_cpu: float
    jvm: dict[str, float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def per_message_ms(self, cpu: float) -> float:
        return cpu / self.count * 1000


async def measured(
    label: str, count: int, sender: list[int], receiver: list[int], postgres: Callable[[], list[int]],
    run: Callable[[int], Awaitable[None]], jvm: int,
) -> Figures:  # fmt: skip
    """Run ``count`` messages and take wall time and each side's CPU time over exactly that window."""
    pg = postgres()
    before = (process_cpu(sender), process_cpu(receiver), process_cpu(pg))
    jvm_before = jvm_threads_cpu(jvm)
    started = time.perf_counter()
    await run(count)
    seconds = time.perf_counter() - started
    after = (process_cpu(sender), process_cpu(receiver), process_cpu(pg))
    jvm_after = jvm_threads_cpu(jvm)
    spent = {k: jvm_after[k] - jvm_before[k] for k in jvm_before}
    send, receive, database = (b - a for a, b in zip(before, after, strict=True))
    return Figures(label, count, seconds, send, receive, database, spent)


async def wait_delivered(pool: asyncpg.Pool, jobs: list[int], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    first, last = min(jobs), max(jobs)
    query = (
        "SELECT count(*) FILTER (WHERE state = 'delivered') AS done, count(*) FILTER (WHERE state = 'failed') AS failed"
        " FROM outbound_messages WHERE id BETWEEN $1 AND $2"
    )
    while time.monotonic() < deadline:
        row = await pool.fetchrow(query, first, last)
        assert row is not None
        if row["failed"]:
            error = await pool.fetchval(
                "SELECT last_error FROM outbound_messages WHERE id BETWEEN $1 AND $2 AND state = 'failed' LIMIT 1",
                first,
                last,
            )
            raise RuntimeError(f"{row['failed']} messages failed: {error}")
        if row["done"] >= len(jobs):
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"not all of {len(jobs)} messages delivered in {timeout:.0f} s")


async def receiving_company(pool: asyncpg.Pool) -> None:
    """The invoice's buyer, served by our receiving gateway."""
    participant = smp.ParticipantId.parse(RECEIVER)
    services = [
        (str(d.document_type), str(p)) for d in smp.profile_services("INVOICE_AND_CREDIT_NOTE") for p in d.processes
    ]
    async with pool.acquire() as c:
        company = await directory_queries.add_company(c, "Norsk Kjøp AS", "NO", participant.local_id)
        await directory_queries.add_participant(c, company, participant.scheme, participant.value, services)


def print_figures(results: list[Figures], warmup: int, in_flight: int, size: int) -> None:
    a, b, c = results
    print(
        f"  {size / 1000:.1f} KB invoice, {in_flight} messages in flight, warm-up {warmup} messages per direction "
        f"discarded, {c.count} measured per direction"
    )
    print(
        f"  {'direction':<24} {'msg/s':>8} {'sender CPU/msg':>15} {'receiver CPU/msg':>17} {'PostgreSQL CPU/msg':>19}"
    )
    for f in results:
        print(
            f"  {f.label:<24} {f.rate:>8.1f} {f.per_message_ms(f.sender_cpu):>12.2f} ms "
            f"{f.per_message_ms(f.receiver_cpu):>14.2f} ms {f.per_message_ms(f.postgres_cpu):>16.2f} ms"
        )
    for f, total in ((a, a.sender_cpu), (b, b.receiver_cpu)):
        jit, gc = f.per_message_ms(f.jvm["jit"]), f.per_message_ms(f.jvm["gc"])
        print(
            f"  phase4 JVM CPU per message in {f.label[:3]}: JIT compiler threads {jit:.2f} ms, GC threads "
            f"{gc:.2f} ms, the rest {f.per_message_ms(total) - jit - gc:.2f} ms"
        )
    ours_send, p4_send = c.per_message_ms(c.sender_cpu), a.per_message_ms(a.sender_cpu)
    ours_recv, p4_recv = c.per_message_ms(c.receiver_cpu), b.per_message_ms(b.receiver_cpu)
    print(
        f"  ratios ours/phase4: sender CPU per message {ours_send / p4_send:.2f} (c/a), "
        f"receiver CPU per message {ours_recv / p4_recv:.2f} (c/b); "
        f"msg/s {c.rate / a.rate:.2f} (c/a), {c.rate / b.rate:.2f} (c/b)"
    )
    print(
        "  (our sender and receiver CPU is the gateway process alone; our side also uses the PostgreSQL "
        "column, phase4's peer stores to files)"
    )


async def _run(tmp: Path, count: int, warmup: int, in_flight: int) -> None:
    pki: DevPki = create_dev_pki(tmp / "pki")
    d = pki.directory
    postgres = EmbeddedPostgres(tmp / "pg", durable=False)
    admin = postgres.start()
    knot = KnotDns(tmp / "dns", ZONE)
    knot.start()
    procs: list[subprocess.Popen[bytes]] = []
    peer: Phase4Peer | None = None
    try:
        conn = await asyncpg.connect(admin)
        for name in ("p4_sender", "p4_receiver"):
            await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        dsn_s, dsn_r = _db(admin, "p4_sender"), _db(admin, "p4_receiver")
        for dsn in (dsn_s, dsn_r):
            c = await asyncpg.connect(dsn)
            await apply_migrations(c)
            await c.close()
        pool_s = await asyncpg.create_pool(dsn_s, min_size=2, max_size=10)
        pool_r = await asyncpg.create_pool(dsn_r, min_size=1, max_size=4)
        assert pool_s is not None and pool_r is not None
        await receiving_company(pool_r)
        port_s, port_r = _port(), _port()
        # ours: AP POP000001 sends, AP POP000002 receives; phase4 receives as POP000002 and sends as POP000001
        procs.append(_start({**_env(d, "ap2", dsn_r, port_r, knot, 0), "PEPPOL_SML_ZONE": ZONE}))
        procs.append(_start({**_env(d, "ap1", dsn_s, port_s, knot, in_flight), "PEPPOL_SML_ZONE": ZONE}))
        receiver_pid, sender_pid = procs[0].pid, procs[1].pid
        our_as4 = f"http://127.0.0.1:{port_r}/as4"

        peer = Phase4Peer(tmp / "phase4-store", tmp / "phase4.log", jvm_flags=BENCH_JVM_FLAGS)
        peer.init(d, peer.store)
        ubl = tmp / "invoice-10k.xml"
        ubl.write_bytes(invoice_of_size(10_000))
        derived: Derived = derive_submission(ubl.read_bytes())

        def pg() -> list[int]:
            return cluster_pids(postgres.data)

        async def phase4_sends(n: int) -> None:
            fields = peer.send_fields(
                ubl=str(ubl), url=our_as4, endpoint_cert=str(d / "ap2.cert.pem"),
                key=str(d / "ap1.key.pem"), cert=str(d / "ap1.cert.pem"),
                ap_ca=str(d / "ap-ca.cert.pem"), root_ca=str(d / "root-ca.cert.pem"),
            )  # fmt: skip
            answer = await asyncio.to_thread(peer.request, "sendmany", n=str(n), threads=str(in_flight), **fields)
            if answer["delivered"] != n:
                raise RuntimeError(f"phase4 delivered {answer['delivered']} of {n}: {answer['first_error']}")

        def our_sends(url: str) -> Callable[[int], Awaitable[None]]:
            async def run(n: int) -> None:
                cert = pki.access_points["ap2"].cert
                jobs = [
                    await submit_document(pool_s, derived, retry_window=600, endpoint_url=url, endpoint_cert=cert)
                    for _ in range(n)
                ]
                await wait_delivered(pool_s, jobs)

            return run

        print(f"  document: {len(derived.sbd)} bytes in its envelope")
        results = []
        directions = [
            ("(a) phase4 -> ours", [peer.pid], [receiver_pid], phase4_sends),
            ("(b) ours -> phase4", [sender_pid], [peer.pid], our_sends(peer.url())),
            ("(c) ours -> ours", [sender_pid], [receiver_pid], our_sends(our_as4)),
        ]
        for label, sender, receiver, run in directions:
            await run(warmup)  # discarded
            results.append(await measured(label, count, sender, receiver, pg, run, peer.pid))
        print_figures(results, warmup, in_flight, len(ubl.read_bytes()))
        await pool_s.close()
        await pool_r.close()
    finally:
        if peer is not None:
            peer.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
        knot.stop()
        postgres.stop()


def main(count: int = 400, warmup: int = 200, in_flight: int = 8) -> None:
    print("phase4 beside us: AS4 send and receive over loopback, receipts and NRR checked")
    try:
        ensure_peer_built()
    except PeerBuildError as exc:
        print(f"  not run: {exc}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp), count, warmup, in_flight))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("count", nargs="?", type=int, default=400, help="measured messages per direction")
    parser.add_argument("--warmup", type=int, default=200, help="messages sent first and discarded, per direction")
    parser.add_argument("--in-flight", type=int, default=8, help="concurrent messages on either sender")
    args = parser.parse_args()
    from gateway.core.logs import configure_logging

    configure_logging("console", "warning")
    main(args.count, args.warmup, args.in_flight)
    sys.exit(0)
