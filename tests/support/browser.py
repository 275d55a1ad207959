"""One headless Chromium for the browser tests of a run: Debian's ``chromium`` driven by
Playwright (Playwright's own browser download cannot be used here; ``.ci/system-deps`` installs
the Debian package)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    """A Playwright ``Browser``; the test fails in one line when chromium is not installed."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.fail("chromium is missing: apt-get install -y chromium (.ci/system-deps does)", pytrace=False)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
        launched = await playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()
