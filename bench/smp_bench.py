"""Discovery figures on loopback: cold lookups (DNS over a real Knot server + SMP fetch over HTTP +
signature verification), cached lookups, and 1,000 concurrent lookups of one uncached participant."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from gateway.dev.dns import KnotDns
from gateway.dev.pki import create_dev_pki
from smp import (
    DocumentTypeId,
    Endpoint,
    LocalSml,
    ParticipantId,
    ProcessEntry,
    ServiceMetadata,
    SmlLookup,
    SmpClient,
    profile_services,
    smp_application,
)

ZONE = "sml.bench.test"
INVOICE = profile_services("INVOICE_AND_CREDIT_NOTE")[0]


class Source:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def document_types(self, participant: ParticipantId) -> Sequence[DocumentTypeId] | None:
        return [INVOICE.document_type]

    async def service_metadata(
        self, participant: ParticipantId, document_type: DocumentTypeId
    ) -> ServiceMetadata | None:
        return ServiceMetadata(participant, document_type, (ProcessEntry(INVOICE.process, (self.endpoint,)),))


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(tmp: Path) -> None:
    pki = create_dev_pki(tmp / "pki")
    endpoint = Endpoint(
        "https://ap.example/as4",
        pki.access_points["ap1"].cert,
        description="AS4",
        technical_contact="ops@example.test",
    )
    runner = web.AppRunner(smp_application(Source(endpoint), pki.smp.key, pki.smp.cert), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    smp_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    with KnotDns(tmp / "dns", ZONE) as knot:
        registrar = LocalSml(ZONE, knot.address, smp_url, key_name=knot.key_name, key_secret=knot.secret)
        participants = [ParticipantId.parse(f"9915:bench{i}") for i in range(301)]
        for p in participants:
            await registrar.register(p)
        client = SmpClient(SmlLookup(ZONE, knot.address), smp_trust=[pki.smp_ca.cert])
        try:
            cold: list[float] = []
            for p in participants[:300]:
                start = time.perf_counter()
                await client.find_endpoint(p, INVOICE.document_type)
                cold.append(time.perf_counter() - start)
            print(
                f"  cold lookup (DNS + SMP + signature) p50 {pct(cold, 0.5):.3f} ms   p99 {pct(cold, 0.99):.3f} ms   (n={len(cold)})"
            )
            cached: list[float] = []
            target = participants[0]
            deadline = time.perf_counter() + 2.0
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                await client.find_endpoint(target, INVOICE.document_type)
                cached.append(time.perf_counter() - start)
            rate = len(cached) / sum(cached)
            print(
                f"  cached lookup                     p50 {pct(cached, 0.5):.4f} ms  p99 {pct(cached, 0.99):.4f} ms  {rate:,.0f} lookups/s (n={len(cached)})"
            )
            queries, fetches = client.sml.queries, client.fetches
            start = time.perf_counter()
            await asyncio.gather(*(client.find_endpoint(participants[300], INVOICE.document_type) for _ in range(1000)))
            elapsed = time.perf_counter() - start
            print(
                f"  1,000 concurrent lookups of one uncached participant: {client.sml.queries - queries} DNS query, "
                f"{client.fetches - fetches} SMP fetch, {elapsed * 1000:.1f} ms in all"
            )
            print(f"  (mean cold lookup {statistics.fmean(cold) * 1000:.3f} ms)")
        finally:
            await client.close()
    await runner.cleanup()


def main() -> None:
    print("SML/SMP discovery (loopback, one process)")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp)))


if __name__ == "__main__":
    main()
