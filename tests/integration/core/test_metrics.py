"""Operations endpoints: Prometheus metrics and readiness."""

from __future__ import annotations

import aiohttp

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from tests.integration.test_access_point import FINLAND, _message_to_b, _post
from tests.support.gateways import in_process_gateway, new_database, register_company


async def test_metrics_count_received_and_refused_messages(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    async with in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, workers=False) as b:
        await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
        await _post(b.as4_url, _message_to_b(dev_pki))
        try:
            await _post(b.as4_url, _message_to_b(dev_pki, receiver="0007:2120000787"))
        except Exception:
            pass
        async with aiohttp.ClientSession() as session, session.get(b.url + "/metrics") as r:
            assert r.status == 200 and r.content_type == "text/plain"
            text = await r.text()
    assert (
        'peppol_as4_received_total{document_type="busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice",outcome="stored"} 1'
        in text
    )
    assert 'peppol_as4_received_total{outcome="EBMS:0004"} 1' in text
    assert 'peppol_http_request_seconds_count{method="POST",route="/as4",status="2xx"} 2' in text
    assert "# TYPE peppol_outbound_queue_depth gauge" in text
    assert 'peppol_certificate_expiry_days{certificate="ap"} 7' in text  # 729.x days for the dev certificate


async def test_ready_needs_the_current_schema(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> None:
    async with (
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, workers=False) as b,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(b.url + "/v1/ready") as r:
            assert r.status == 200 and (await r.json())["data"]["status"] == "ready"
        await b.pool.execute(
            "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)"
        )
        async with session.get(b.url + "/v1/ready") as r:
            assert r.status == 503 and (await r.json())["data"]["status"] == "not_ready"
