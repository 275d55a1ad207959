"""One exception root per package, all under GatewayError: a caller can catch a package's errors,
or everything the gateway reports on purpose."""

from __future__ import annotations

import importlib

import pytest

from gateway.core.errors import GatewayError

ROOTS = [
    ("gateway.core.errors", "CoreError"),
    ("gateway.documents.errors", "DocumentError"),
    ("gateway.webhooks.errors", "WebhookError"),
    ("gateway.security.errors", "SecurityError"),
    ("gateway.directory.errors", "DirectoryError"),
    ("gateway.outbound.errors", "OutboundError"),
    ("gateway.duties.errors", "DutiesError"),
    ("gateway.inbound.errors", "InboundError"),
    ("gateway.dev.errors", "DevError"),
    ("gateway.api.envelope", "ApiError"),
    ("gateway.cli.main", "CliError"),
]


@pytest.mark.parametrize(("module", "name"), ROOTS)
def test_each_package_root_is_a_gateway_error(module: str, name: str) -> None:
    assert issubclass(getattr(importlib.import_module(module), name), GatewayError)


@pytest.mark.parametrize(
    ("module", "name", "root"),
    [
        ("gateway.core.config", "ConfigError", "CoreError"),
        ("gateway.documents.envelope", "SbdhError", "DocumentError"),
        ("gateway.outbound.errors", "SubmissionError", "OutboundError"),
        ("gateway.duties.errors", "ReportError", "DutiesError"),
    ],
)
def test_errors_sit_under_their_package_root(module: str, name: str, root: str) -> None:
    roots = {n: getattr(importlib.import_module(m), n) for m, n in ROOTS}
    assert issubclass(getattr(importlib.import_module(module), name), roots[root])
