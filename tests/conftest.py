"""Fixtures every tier may use; none starts a server (those are in tests/support/services.py,
registered by the integration and system tiers only)."""

from __future__ import annotations

import pytest

from gateway.core.logs import configure_logging
from gateway.dev.pki import DevPki, create_dev_pki

configure_logging("console", "warning")


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A development PKI made for this test run (never the one in certs-dev/)."""
    directory = tmp_path_factory.mktemp("pki")
    return create_dev_pki(directory)
