"""Validation in layers with the official artefacts (UBL 2.1 XSD, CEN EN 16931, Peppol BIS
Billing 3.0), from the library, the command line and the API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from gateway.duties.validation import validate_document

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).parent.parent / "examples"
INVOICE = (DATA / "invoice-bis3.xml").read_bytes()


def _rules(data: bytes) -> set[tuple[str, str, str]]:
    return {(f.layer, f.rule_id, f.flag) for f in validate_document(data).findings}


def test_valid_invoice_passes_every_layer_and_names_the_artefacts() -> None:
    result = validate_document(INVOICE)
    assert result.valid and result.findings == []
    assert result.layers_run == ["xml", "schema", "en16931", "peppol"]
    assert set(result.artefacts) == {"ubl-2.1-xsd", "cen-en16931-ubl", "peppol-bis-billing-3", "saxon"}


def test_wrong_payable_amount_breaks_br_co_16() -> None:
    bad = INVOICE.replace(
        b'<cbc:PayableAmount currencyID="NOK">1250.00', b'<cbc:PayableAmount currencyID="NOK">1350.00'
    )
    assert ("en16931", "BR-CO-16", "fatal") in _rules(bad)
    assert not validate_document(bad).valid


def test_missing_buyer_reference_breaks_a_peppol_rule() -> None:
    bad = INVOICE.replace(b"<cbc:BuyerReference>PO-7781</cbc:BuyerReference>", b"")
    assert ("peppol", "PEPPOL-EN16931-R003", "fatal") in _rules(bad)


def test_schema_violation_is_reported_by_the_schema_layer() -> None:
    bad = INVOICE.replace(b"<cbc:IssueDate>2026-11-20</cbc:IssueDate>", b"<cbc:IssueDate>tomorrow</cbc:IssueDate>")
    assert any(layer == "schema" for layer, _, _ in _rules(bad))


def test_envelope_is_unwrapped_before_validation() -> None:
    from tests.as4_support import sbd

    assert validate_document(sbd()).valid


def test_document_without_shipped_artefacts_says_which_layers_ran() -> None:
    result = validate_document((EXAMPLES / "order.xml").read_bytes())
    assert result.layers_run == ["xml"]
    assert "no validation artefacts" in result.layers_skipped["en16931"]


def test_malformed_and_hostile_xml_are_xml_findings() -> None:
    assert validate_document(b"<Invoice").findings[0].layer == "xml"
    xxe = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'
    result = validate_document(xxe)
    assert not result.valid and "document type declarations" in result.findings[0].text


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


async def test_validation_in_the_pool_works_after_reports_were_checked_in_this_process() -> None:
    from gateway.duties.report_documents import build_eusr, build_tsr
    from gateway.duties.validation import Validator, validate_report

    period = {"start": date(2026, 10, 1), "end": date(2026, 10, 31), "reporter": "POP000001"}
    # as a gateway without a pool does it: in a worker thread
    assert (await asyncio.to_thread(validate_report, build_tsr([], **period))).valid  # type: ignore[arg-type]
    assert (await asyncio.to_thread(validate_report, build_eusr([], **period))).valid  # type: ignore[arg-type]
    validator = Validator(1)  # its worker must not inherit the loaded SaxonC runtime by fork
    try:
        result = await validator.validate((Path(__file__).parent.parent / "examples" / "invoice.xml").read_bytes())
    finally:
        validator.close()
    assert result.layers_run == ["xml", "schema", "en16931", "peppol"]


async def test_a_validation_pool_whose_worker_died_is_replaced() -> None:
    import os
    import signal

    from gateway.duties.validation import Validator

    invoice = (Path(__file__).parent.parent / "examples" / "invoice.xml").read_bytes()
    validator = Validator(1)
    try:
        assert (await validator.validate(invoice)).layers_run[-1] == "peppol"
        for pid in list(validator._pool._processes):  # the out-of-memory killer, say
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert (await validator.validate(invoice)).layers_run[-1] == "peppol"
    finally:
        validator.close()
