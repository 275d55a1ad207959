"""The CLI reports bad configuration in one line, without a traceback."""

from __future__ import annotations

import subprocess
import sys


def test_cli_reports_bad_configuration_in_one_line_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "migrate"],
        env={"PEPPOL_HTTP_PORT": "99999", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "peppol-gateway: configuration error: PEPPOL_HTTP_PORT: expected an integer from 0 to 65535, got 99999"
    ]
