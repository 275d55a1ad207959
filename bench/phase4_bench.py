"""phase4 (com.helger.phase4 4.4.1, the reference Java Peppol AS4 implementation) beside us, in one
run, on the same ~10 KB invoice (tests/support/data/invoice-bis3.xml padded with invoice lines):

  (a) phase4's Peppol sender  -> our receiver (`peppol-gateway serve`)
  (b) our sender (the outbound workers of `peppol-gateway serve`) -> phase4's AS4 receiver
  (c) our sender -> our receiver

Each direction is warmed up first and the warm-up discarded: a direction with phase4 in it sends
batches of 250 until, after at least 1,000 messages, the JVM's CPU per message outside its JIT
compiler threads agrees within 5 % over two batches in a row, or 3,000 messages were sent, and
says which; ours -> ours sends 200. (phase4's code base is large: its JIT compiler threads still
take a fifth of its CPU after 3,000 messages, compiling methods that reach their thresholds only
now; a long-running phase4 is past that, so phase4's figure in the summary leaves the JIT threads
out, which favours phase4.) Then a
measured batch, with the same number of messages in flight on both sides. Every message counts
only once its signed receipt was checked, non-repudiation digests included. Figures: messages per
second over the measured batch, and CPU per message of each process (utime + stime from
/proc/<pid>/stat over the measured window), PostgreSQL (our two gateways' cluster) shown apart.
phase4's peer keeps what it receives in files, with no database.

phase4's JVM is set up as a tuned deployment would be, none of it changing what phase4 does with
a message: the server JIT (the tests' peer stops at C1); ``phase4.wss4j.syncsecurity`` at phase4's
own default, false, as phase4-peppol-standalone runs (the tests' peer sets it true, which runs
every WS-Security operation of the JVM under one lock and sets WSS4J up and down around each);
and the JAXP TransformerFactory and Jakarta Mail StreamProvider pinned by system property to the
implementations the JVM finds anyway (Saxon's, Angus Mail's). Unpinned, JAXB and Jakarta Mail
look them up for every message across all the classpath's jars through the ServiceLoader, a
signed jar verified each time: about 150 ms per lookup here, three quarters of the sender's CPU.
The sender builds each message with a new ``Phase4PeppolSender`` builder (its own HTTP client),
as phase4's API and its standalone access point have it.

Run: ``python -m bench.phase4_bench [COUNT] [--warmup N] [--least N] [--batch N] [--in-flight N]
[--jvm-flag F]``; `make
bench` runs it too. It prints figures and asserts nothing.
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
from bench.e2e_bench import _db, _env, _ports, _start
from bench.report import Figure, Peer
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
# Server JIT and phase4's own default for WS-Security locking, as deployed (see above).
BENCH_JVM_FLAGS = (
    "-Xshare:auto",
    "-Dphase4.wss4j.syncsecurity=false",
    "-Djavax.xml.transform.TransformerFactory=net.sf.saxon.TransformerFactoryImpl",
    "-Djakarta.mail.util.StreamProvider=org.eclipse.angus.mail.util.MailStreamProvider",
)
SETTLED = 0.05  # two warm-up batches this close in the JVM's CPU per message (JIT threads aside): warm


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


def jvm_work_ms(f: Figures, total: float) -> float:
    """phase4's CPU per message outside its JIT compiler threads (GC included)."""
    return f.per_message_ms(total - f.jvm["jit"])


def print_figures(results: list[Figures], in_flight: int, size: int) -> None:
    a, b, c = results
    print(f"  {size / 1000:.1f} KB invoice, {in_flight} messages in flight, {c.count} measured per direction")
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
    ours_send, p4_send = c.per_message_ms(c.sender_cpu), jvm_work_ms(a, a.sender_cpu)
    ours_recv, p4_recv = c.per_message_ms(c.receiver_cpu), jvm_work_ms(b, b.receiver_cpu)
    print(
        f"  ratios ours/phase4 (phase4 without its JIT threads): sender CPU per message {ours_send / p4_send:.2f} "
        f"(c/a), receiver CPU per message {ours_recv / p4_recv:.2f} (c/b); "
        f"msg/s {c.rate / a.rate:.2f} (c/a), {c.rate / b.rate:.2f} (c/b)"
    )
    print(
        "  (our sender and receiver CPU is the gateway process alone; our side also uses the PostgreSQL "
        "column, phase4's peer stores to files)"
    )


def figures(results: list[Figures], warmed: list[int]) -> list[Figure]:
    """The summary's figures: our sender and receiver beside phase4's, each with the same other
    end; phase4's without its JIT compiler threads (a long-running phase4 has compiled its code)."""
    a, b, c = results

    def peer(f: Figures, total: float, side: str, n: int) -> Peer:
        whole, jit = f.per_message_ms(total), f.per_message_ms(f.jvm["jit"])
        note = f"{side}; JIT threads left out ({jit:.2f} of {whole:.2f} ms), after {n:,} warm-up messages"
        return Peer("phase4", jvm_work_ms(f, total), note=note)

    pg = c.per_message_ms(c.postgres_cpu)
    return [
        Figure(
            "phase4.send_cpu", value=c.per_message_ms(c.sender_cpu),
            peers=(peer(a, a.sender_cpu, "sending to our receiver", warmed[0]),),
            note=f"ours sending to ours, {c.count} messages; our PostgreSQL adds {pg:.2f} ms/msg (both sides)",
        ),
        Figure(
            "phase4.receive_cpu", value=c.per_message_ms(c.receiver_cpu),
            peers=(peer(b, b.receiver_cpu, "from our sender, stored to files", warmed[1]),),
            note="ours from ours (its PostgreSQL work in the line above)",
        ),
    ]  # fmt: skip


async def warm(
    run: Callable[[int], Awaitable[None]], jvm: int | None, limit: int, batch: int, least: int
) -> tuple[int, str]:
    """Send warm-up batches (all of ``limit`` at once without a JVM in the direction) until, after
    at least ``least`` messages, the JVM's CPU per message outside its JIT compiler threads agrees
    within SETTLED over two batches in a row, or until ``limit`` messages were sent. (The JIT of
    phase4's large code base keeps compiling for thousands of messages more; that is left out of
    phase4's figure.) Returns (messages sent, what happened)."""
    if jvm is None:
        await run(limit)
        return limit, f"{limit} messages"
    sent, work, jit, settled = 0, [], [], False
    while sent < limit and not settled:
        n = min(batch, limit - sent)
        before, jit_before = process_cpu([jvm]), jvm_threads_cpu(jvm)["jit"]
        await run(n)
        sent += n
        compiling = jvm_threads_cpu(jvm)["jit"] - jit_before
        work.append((process_cpu([jvm]) - before - compiling) / n * 1000)
        jit.append(compiling / n * 1000)
        settled = sent >= least and len(work) >= 2 and abs(work[-1] - work[-2]) <= SETTLED * work[-2]
    trail = ", ".join(f"{w:.1f}+{j:.1f}" for w, j in zip(work, jit, strict=True))
    state = "settled" if settled else f"not settled within {limit}"
    return sent, f"{sent} messages; phase4 JVM CPU ms per message by batch of {batch}, work+JIT: {trail}; {state}"


async def _run(
    tmp: Path, count: int, warmup: int, in_flight: int, jvm_flags: tuple[str, ...], batch: int, least: int
) -> list[Figure]:
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
        port_s, port_r = _ports(2)
        quiet = {"PEPPOL_SML_ZONE": ZONE, "PEPPOL_REPORTING_SCHEDULE": "false"}
        # ours: AP POP000001 sends, AP POP000002 receives; phase4 receives as POP000002 and sends as POP000001
        procs.append(_start({**_env(d, "ap2", dsn_r, port_r, knot, 0), **quiet}))
        procs.append(_start({**_env(d, "ap1", dsn_s, port_s, knot, in_flight), **quiet}))
        receiver_pid, sender_pid = procs[0].pid, procs[1].pid
        our_as4 = f"http://127.0.0.1:{port_r}/as4"

        peer = Phase4Peer(tmp / "phase4-store", tmp / "phase4.log", jvm_flags=(*BENCH_JVM_FLAGS, *jvm_flags))
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
        results, warmed = [], []
        directions = [
            ("(a) phase4 -> ours", [peer.pid], [receiver_pid], phase4_sends, peer.pid),
            ("(b) ours -> phase4", [sender_pid], [peer.pid], our_sends(peer.url()), peer.pid),
            ("(c) ours -> ours", [sender_pid], [receiver_pid], our_sends(our_as4), None),
        ]
        for label, sender, receiver, run, jvm in directions:
            sent, text = await warm(run, jvm, warmup if jvm else min(warmup, 200), batch, least)
            warmed.append(sent)
            print(f"  warm-up {label[:3]}: {text}", flush=True)
            results.append(await measured(label, count, sender, receiver, pg, run, peer.pid))
        print_figures(results, in_flight, len(ubl.read_bytes()))
        await pool_s.close()
        await pool_r.close()
        return figures(results, warmed)
    finally:
        if peer is not None:
            peer.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
        knot.stop()
        postgres.stop()


def main(
    count: int = 600, warmup: int = 3000, in_flight: int = 8, jvm_flags: tuple[str, ...] = (), batch: int = 250,
    least: int = 1000,
) -> list[Figure]:  # fmt: skip
    print("phase4 beside us: AS4 send and receive over loopback, receipts and NRR checked")
    try:
        ensure_peer_built()
    except PeerBuildError as exc:
        print(f"  not run: {exc}")
        reason = f"phase4 peer not built: {exc}"
        return [
            Figure(k, missing=reason, peers=(Peer("phase4", missing=reason),))
            for k in ("phase4.send_cpu", "phase4.receive_cpu")
        ]
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_run(Path(tmp), count, warmup, in_flight, tuple(jvm_flags), batch, least))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("count", nargs="?", type=int, default=600, help="measured messages per direction")
    parser.add_argument("--warmup", type=int, default=3000, help="at most this many warm-up messages per direction")
    parser.add_argument("--least", type=int, default=1000, help="at least this many, with phase4 in the direction")
    parser.add_argument("--batch", type=int, default=250, help="warm-up batch size (the JVM settles between them)")
    parser.add_argument("--in-flight", type=int, default=8, help="concurrent messages on either sender")
    parser.add_argument("--jvm-flag", action="append", default=[], help="one more flag for phase4's JVM (repeatable)")
    args = parser.parse_args()
    from gateway.core.logs import configure_logging

    configure_logging("console", "warning")
    main(args.count, args.warmup, args.in_flight, tuple(args.jvm_flag), args.batch, args.least)
    sys.exit(0)
