"""/v1/docs in a real browser: Swagger UI, served from the gateway alone, renders the operations
of /v1/openapi.json (and the MCP endpoint among them)."""

from __future__ import annotations

from typing import Any

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from tests.support.gateways import in_process_gateway, new_database


async def test_the_docs_page_lists_the_operations(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns, browser: Any
) -> None:
    async with in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as gw:
        page = await browser.new_page()
        foreign: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(gw.url) else foreign.append(r.url))
        try:
            response = await page.goto(f"{gw.url}/v1/docs")
            assert response is not None and response.status == 200
            await page.wait_for_selector(".opblock", timeout=15_000)
            paths = set(await page.locator(".opblock-summary-path").all_inner_texts())
            title = await page.locator(".info .title").inner_text()
        finally:
            await page.close()
        assert "Peppol gateway API" in title
        assert {"/v1/documents", "/v1/documents/{doc_id}/response", "/v1/company/notifications", "/v1/mcp"} <= {
            p.replace("\u200b", "").strip() for p in paths
        }, paths
        assert foreign == []  # no CDN: every file came from the gateway
