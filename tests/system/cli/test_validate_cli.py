"""`peppol-gateway validate` exit codes: valid, invalid, unreadable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.paths import DATA

INVOICE = (DATA / "invoice-bis3.xml").read_bytes()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "validate", *args], capture_output=True, text=True, check=False
    )


def test_cli_exit_codes(tmp_path: Path) -> None:
    assert _cli(str(DATA / "invoice-bis3.xml")).returncode == 0
    bad = tmp_path / "bad.xml"
    bad.write_bytes(INVOICE.replace(b'PayableAmount currencyID="NOK">1250.00', b'PayableAmount currencyID="NOK">1.00'))
    result = _cli(str(bad), "--json")
    assert result.returncode == 1
    assert "BR-CO-16" in {e["rule_id"] for e in json.loads(result.stdout)["errors"]}
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<Invoice")
    assert _cli(str(broken)).returncode == 2
    assert _cli(str(tmp_path / "missing.xml")).returncode == 2
