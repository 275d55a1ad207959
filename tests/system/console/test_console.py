"""The operator console in a real browser (Debian's chromium driven by Playwright) against two
in-process gateways, so that documents are really delivered: sign in, find the invoice sent,
follow its trace to the receipt, send a failed delivery again, create, verify and register a
company and see its SML state; a company's user does not reach another company's document, and
a form without its token is refused. Screenshots of the main pages go to a temporary folder."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.directory import queries as directory_queries
from gateway.directory import registration
from gateway.security.credentials import create_api_key, create_operator
from tests.support.api import Caller, token
from tests.support.gateways import InProcessGateway, in_process_gateway, new_database, register_company
from tests.support.paths import EXAMPLES

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
NORWAY, FINLAND, LATE = "0192:991825827", "0216:003720774740", "0192:923609016"


@dataclass
class Network:
    a: InProcessGateway
    b: InProcessGateway
    operator: tuple[str, str]  # id and key of A's operator
    nordic: Caller  # the API as the Norwegian company on A
    finland: tuple[str, str]  # id and key of the Finnish company on B
    danish: tuple[str, str]  # another company on B, with nothing of its own


@pytest.fixture(scope="module")
async def network(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[Network]:
    fast = {"PEPPOL_VALIDATION_ON_SUBMIT": "false"}
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, **fast) as a,
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, **fast) as b,
        aiohttp.ClientSession() as session,
    ):
        a.runtime.discovery.negative_ttl = 0  # a receiver registered later is found at once
        operator_id, operator_key = await create_operator(a.pool, "Operator One")
        async with a.pool.acquire() as conn:
            nordic_id = await directory_queries.add_company(conn, "Nordic Supplies AS", "NO", "991825827")
            await directory_queries.link_operator(conn, nordic_id, operator_id)
        await registration.register_profiles(
            a.pool, a.runtime.registrar, nordic_id, ["INVOICE_AND_CREDIT_NOTE"], "PEPPOLBIS30", NORWAY
        )
        _, nordic_key = await create_api_key(a.pool, company_id=nordic_id)
        finland_id = await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
        _, finland_key = await create_api_key(b.pool, company_id=finland_id)
        async with b.pool.acquire() as conn:
            danish_id = await directory_queries.add_company(conn, "Dansk Indkøb ApS", "DK", "12345674")
        _, danish_key = await create_api_key(b.pool, company_id=danish_id)
        nordic = await token(session, a.url, str(nordic_id), nordic_key)
        yield Network(
            a, b, (str(operator_id), operator_key), nordic, (str(finland_id), finland_key),
            (str(danish_id), danish_key),
        )  # fmt: skip


async def _send(nordic: Caller, invoice: bytes, **fields: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", invoice, filename="invoice.xml", content_type="application/xml")
    for name, value in fields.items():
        form.add_field(name, value)
    status, body = await nordic.call("POST", "/v1/invoices", data=form)
    assert status == 202, body
    return str(body["data"]["id"])


async def _settled(nordic: Caller, doc_id: str) -> str:
    for _ in range(300):
        _, body = await nordic.call("GET", f"/v1/invoices/{doc_id}")
        if body["data"]["status"] in ("delivered", "failed", "accepted", "rejected"):
            return str(body["data"]["status"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{doc_id} is still {body['data']['status']}")


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """Where the screenshots go: $CONSOLE_SCREENSHOTS, or a new temporary folder (never the clone)."""
    folder = os.environ.get("CONSOLE_SCREENSHOTS") or tempfile.mkdtemp(prefix="console-screens-")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


async def test_the_console_in_a_browser(network: Network, screenshots: Path) -> None:
    assert CHROMIUM.exists(), "the console's browser tests need Debian's chromium (.ci/system-deps installs it)"
    from playwright.async_api import async_playwright, expect

    invoice = (EXAMPLES / "invoice.xml").read_bytes()
    delivered = await _send(network.nordic, invoice)
    assert await _settled(network.nordic, delivered) == "delivered"
    late = invoice.replace(b"NS-2026-1001", b"NS-2026-1002")
    failed = await _send(network.nordic, late, receiver=LATE)  # nobody receives as LATE yet
    assert await _settled(network.nordic, failed) == "failed"
    await register_company(network.b, "Fjord Mottak AS", "NO", LATE, "INVOICE_AND_CREDIT_NOTE")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            # -- the operator of A --------------------------------------------------------------
            ops = await browser.new_context(viewport={"width": 1366, "height": 800})
            page = await ops.new_page()
            page.set_default_timeout(10000)
            await page.goto(f"{network.a.url}/console/")
            await expect(page).to_have_url(re.compile(r"/console/sign-in"))
            await page.screenshot(path=screenshots / "sign-in.png")
            await page.get_by_label("Client id").fill(network.operator[0])
            await page.get_by_label("Client secret (API key)").fill("gwk_wrong")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("alert")).to_contain_text("Unknown client id or secret")
            await page.get_by_label("Client secret (API key)").fill(network.operator[1])
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="Messages")).to_be_visible()
            cookie = next(c for c in await ops.cookies() if c["name"] == "console_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert not cookie["secure"]  # loopback: plain http; Secure everywhere else

            # find the invoice by its number and follow its trace to the receipt
            await page.get_by_label("Number or AS4 MessageId").fill("NS-2026-1001")
            await page.get_by_role("button", name="Search").click()
            await expect(page.locator("tbody tr")).to_have_count(1)
            await page.screenshot(path=screenshots / "messages.png", full_page=True)
            await page.get_by_role("link", name=delivered).click()
            await expect(page.locator("#doc-status")).to_have_text("delivered")
            trail = page.locator("ol.trail li")
            await expect(trail).to_have_count(3)
            await expect(trail.nth(2)).to_contain_text("receipt")
            async with page.expect_download() as download:
                await page.get_by_role("link", name="The signed AS4 receipt received").click()
            receipt = Path(await (await download.value).path()).read_bytes()
            assert b"Receipt" in receipt and b"Signature" in receipt
            await page.screenshot(path=screenshots / "document-delivered.png", full_page=True)

            # send the failed one again, now that its receiver exists; its page follows it live
            await page.goto(f"{network.a.url}/console/documents?status=failed")
            await page.get_by_role("link", name=failed).click()
            await expect(page.locator("#doc-status")).to_have_text("failed")
            await expect(page.locator("dl.facts")).to_contain_text("receiver")
            await page.screenshot(path=screenshots / "document-failed.png", full_page=True)
            await page.get_by_role("link", name="Send again…").click()
            await expect(page.get_by_role("heading", name=f"Send {failed} again?")).to_be_visible()
            await page.get_by_role("button", name="Send again").click()
            await expect(page.get_by_role("status")).to_contain_text(f"sent again from {failed}")
            await expect(page.locator("#doc-status")).to_have_text("delivered", timeout=15000)
            again = page.url.rsplit("/", 1)[-1].split("?")[0]
            assert again != failed
            await page.goto(f"{network.a.url}/console/documents/{failed}")
            await expect(page.locator("ol.trail")).to_contain_text(f"sent again as {again}")

            # companies: create one, register a profile (pending until verified), verify it
            await page.get_by_role("navigation").get_by_role("link", name="Companies").click()
            await page.get_by_label("Name").fill("Fjord Trading AS")
            await page.get_by_label("Country (ISO code)").fill("NO")
            await page.get_by_label("Business id").fill("745707327")
            await page.get_by_role("button", name="Create company").click()
            await expect(page.locator("#new-key")).to_contain_text("gwk_")
            await page.get_by_role("link", name="Open the company").click()
            await page.get_by_label("INVOICE_AND_CREDIT_NOTE").check()
            await page.get_by_role("button", name="Register").click()
            await expect(page.locator(".sml-state")).to_have_text("pending")
            await expect(page.locator("section.panel")).to_contain_text("not published")
            await page.get_by_role("button", name="Verify company").click()
            await expect(page.locator("#verified")).to_have_text("yes")
            await expect(page.locator(".sml-state")).to_have_text("active")
            await expect(page.locator("section.panel")).to_contain_text("published")
            await page.screenshot(path=screenshots / "company.png", full_page=True)
            await page.get_by_role("navigation").get_by_role("link", name="Companies").click()
            await expect(page.locator("tbody")).to_contain_text("Nordic Supplies AS")
            await page.screenshot(path=screenshots / "companies.png", full_page=True)

            # network health (the queue refreshes itself) and duties
            await page.get_by_role("navigation").get_by_role("link", name="Network health").click()
            await expect(page.locator("tbody")).to_contain_text(["sending"])
            stamp = await page.locator("#queue-at").text_content()
            await expect(page.locator("#queue-at")).not_to_have_text(stamp or "", timeout=8000)
            await expect(page.locator("section[aria-labelledby=certs-h] tbody tr")).to_have_count(2)
            await page.screenshot(path=screenshots / "health.png", full_page=True)
            await page.get_by_role("navigation").get_by_role("link", name="Duties").click()
            await expect(page.get_by_role("heading", name="Webhook deliveries")).to_be_visible()
            await page.screenshot(path=screenshots / "duties.png", full_page=True)

            # a form without its token is refused, and so is one with a wrong token
            refused = await page.request.post(
                f"{network.a.url}/console/companies", form={"name": "X", "country": "NO", "business_id": "1"}
            )
            assert refused.status == 403 and "security token" in await refused.text()
            refused = await page.request.post(
                f"{network.a.url}/console/documents/{failed}/retry", form={"csrf_token": "forged"}
            )
            assert refused.status == 403

            await page.get_by_role("button", name="Sign out").click()
            await expect(page).to_have_url(re.compile(r"/console/sign-in"))
            await page.goto(f"{network.a.url}/console/documents/{delivered}")
            await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
            await ops.close()

            # -- companies' users on B: the receiver sees its invoice, another company does not --
            finnish = await browser.new_context()
            page = await finnish.new_page()
            await _sign_in(page, network.b.url, *network.finland)
            await page.get_by_label("Direction").select_option("received")
            await page.get_by_role("button", name="Search").click()
            await expect(page.locator("tbody tr")).to_have_count(1)  # the first invoice (the other went to LATE)
            received = (await page.locator("tbody tr td a").last.text_content() or "").strip()
            await page.get_by_role("link", name=received).click()
            await expect(page.locator("ol.trail")).to_contain_text("signed receipt sent")
            await expect(page.get_by_role("link", name="Network health")).to_have_count(0)
            await finnish.close()

            danish = await browser.new_context()
            page = await danish.new_page()
            await _sign_in(page, network.b.url, *network.danish)
            response = await page.goto(f"{network.b.url}/console/documents/{received}")
            assert response is not None and response.status == 404
            await expect(page.get_by_role("alert")).to_contain_text("no such document")
            evidence = await page.request.get(f"{network.b.url}/console/documents/{received}/evidence/receipt.xml")
            assert evidence.status == 404
            health = await page.goto(f"{network.b.url}/console/health")
            assert health is not None and health.status == 403
            await danish.close()
        finally:
            await browser.close()
    print(f"\nconsole screenshots: {screenshots}")


async def _sign_in(page: object, base: str, client_id: str, secret: str) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.goto(f"{base}/console/sign-in")
    await page.get_by_label("Client id").fill(client_id)
    await page.get_by_label("Client secret (API key)").fill(secret)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Messages")).to_be_visible()
