"""Validation in layers with the official artefacts (UBL 2.1 XSD, CEN EN 16931, Peppol BIS
Billing 3.0 of the release in force on the document's date), from the library, the command line
and the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.config import ConfigError, Settings
from gateway.directory import queries as directory_queries
from gateway.duties import validation
from gateway.duties.validation import validate_document
from gateway.runtime import check_validation_available
from tests.support.paths import DATA, EXAMPLES

INVOICE = (DATA / "invoice-bis3.xml").read_bytes()


def _rules(data: bytes) -> set[tuple[str, str, str]]:
    return {(f.layer, f.rule_id, f.flag) for f in validate_document(data).findings}


def test_valid_invoice_passes_every_layer_and_names_the_artefacts() -> None:
    result = validate_document(INVOICE)
    assert result.valid and result.findings == []
    assert result.layers_run == ["xml", "schema", "en16931", "peppol"]
    assert set(result.artefacts) == {"ubl-2.1-xsd", "cen-en16931-ubl", "peppol-bis-billing-3", "release", "saxon"}
    assert result.artefacts["peppol-bis-billing-3"].startswith("3.0.21: ")
    assert "PEPPOL-EN16931-UBL.xslt sha256:" in result.artefacts["peppol-bis-billing-3"]
    assert result.artefacts["release"] == "3.0.21 in force on 2026-11-20"


def _dated(data: bytes, day: str) -> bytes:
    return data.replace(b"<cbc:IssueDate>2026-11-20", f"<cbc:IssueDate>{day}".encode())


def test_a_rule_new_since_bis_3_0_15_refuses_the_invoice_with_its_id() -> None:
    # PEPPOL-COMMON-R052 (Danish chamber of commerce numbers, scheme 0096, ten digits) came with
    # 3.0.20; the 3.0.15 rules had no such check.
    bad = INVOICE.replace(
        b"<cbc:CompanyID>991825827</cbc:CompanyID>", b'<cbc:CompanyID schemeID="0096">12345</cbc:CompanyID>'
    )
    result = validate_document(bad)
    assert not result.valid and ("peppol", "PEPPOL-COMMON-R052", "fatal") in _rules(bad)
    assert result.artefacts["peppol-bis-billing-3"].startswith("3.0.21: ")


def test_the_release_follows_the_issue_date_and_a_transition_accepts_either() -> None:
    # 3.0.21 removed EAS code 0037 (PEPPOL-EN16931-CL008); 3.0.20 still had it.
    old_scheme = INVOICE.replace(
        b'<cbc:EndpointID schemeID="0192">991825827</cbc:EndpointID>',
        b'<cbc:EndpointID schemeID="0037">003712345678</cbc:EndpointID>',
    )
    in_force = validate_document(old_scheme)
    assert not in_force.valid and ("peppol", "PEPPOL-EN16931-CL008", "fatal") in _rules(old_scheme)
    transition = validate_document(_dated(old_scheme, "2026-06-01"))
    assert transition.valid, transition.as_json()["errors"]
    assert transition.artefacts["peppol-bis-billing-3"].startswith("3.0.20: ")
    assert transition.artefacts["release"].endswith("either is accepted); passed: 3.0.20")
    before = validate_document(_dated(old_scheme, "2026-03-02"))
    assert before.valid and before.artefacts["release"] == "3.0.20 in force on 2026-03-02"
    oldest = validate_document(_dated(INVOICE, "2024-03-01"))
    assert oldest.valid and oldest.artefacts["release"].startswith("3.0.19, the oldest release shipped")


def test_a_missing_artefact_is_not_validated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PEPPOL_VALIDATION_RULES", str(tmp_path))
    result = validate_document(INVOICE)
    assert result.status == "not validated" and not result.valid
    assert "validation artefacts missing" in result.layers_skipped["peppol"]
    assert "bis_billing 3.0.21 (PEPPOL-EN16931-UBL.xslt)" in result.layers_skipped["peppol"]
    reason = validation.validation_unavailable()
    assert reason is not None and ".ci/validation-rules" in reason


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


def test_schema_findings_name_the_line_of_the_document_as_sent() -> None:
    bad = INVOICE.replace(b"<cbc:IssueDate>2026-11-20</cbc:IssueDate>", b"<cbc:IssueDate>tomorrow</cbc:IssueDate>")
    line = bad[: bad.index(b"tomorrow")].count(b"\n") + 1
    found = [f for f in validate_document(bad).findings if f.layer == "schema"]
    assert found and found[0].location == f"line {line}", found


def test_a_rule_that_cannot_be_evaluated_fails_its_layer_instead_of_raising() -> None:
    # An amount that is no number: CEN EN 16931 converts it to a decimal (a dynamic error).
    bad = INVOICE.replace(b">1000.00</cbc:TaxExclusiveAmount>", b">X</cbc:TaxExclusiveAmount>", 1)
    assert bad != INVOICE
    result = validate_document(bad)
    assert not result.valid and result.validated
    assert ("en16931", "XSLT", "fatal") in {(f.layer, f.rule_id, f.flag) for f in result.findings}
    assert any(f.layer == "schema" for f in result.findings)


def test_envelope_is_unwrapped_before_validation() -> None:
    from tests.support.as4 import sbd

    assert validate_document(sbd()).valid


def test_document_without_shipped_artefacts_says_which_layers_ran() -> None:
    result = validate_document((EXAMPLES / "ehf-order.xml").read_bytes())
    assert result.layers_run == ["xml"]
    assert "no validation artefacts" in result.layers_skipped["en16931"]


def test_malformed_and_hostile_xml_are_xml_findings() -> None:
    assert validate_document(b"<Invoice").findings[0].layer == "xml"
    xxe = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'
    result = validate_document(xxe)
    assert not result.valid and "document type declarations" in result.findings[0].text


# -- when the rule layers cannot run ------------------------------------------------------------


@pytest.fixture
def without_artefacts(monkeypatch: pytest.MonkeyPatch) -> str:
    """As in an installation without the [validation] extra."""
    reason = "saxonche and facturx not installed (simulated)"

    def absent(*args: object) -> None:
        raise validation.ValidationUnavailable(reason)

    monkeypatch.setattr(validation, "_check_paths", absent)
    monkeypatch.setattr(validation, "_ENGINE", None)
    return reason


def test_a_missing_layer_makes_the_result_not_validated_never_valid(without_artefacts: str) -> None:
    result = validate_document(INVOICE)
    assert not result.valid and not result.validated and result.status == "not validated"
    assert result.layer_states() == {"xml": "run", "schema": "not run", "en16931": "not run", "peppol": "not run"}
    report = result.as_json()
    assert report["status"] == "not validated" and report["valid"] is False
    assert report["layers_skipped"]["peppol"] == without_artefacts
    assert validation.validation_unavailable() == without_artefacts


def test_a_report_that_cannot_be_checked_is_not_validated(without_artefacts: str) -> None:
    tsr = b'<TransactionStatisticsReport xmlns="urn:fdc:peppol:transaction-statistics-report:1.0"/>'
    result = validation.validate_report(tsr)
    assert not result.valid and result.status == "not validated"
    assert result.layer_states() == {"xml": "run", "peppol-tsr": "not run"}


def test_documents_without_rules_are_valid_with_the_layers_not_applicable() -> None:
    result = validate_document((EXAMPLES / "ehf-order.xml").read_bytes())  # EHF's own rules are not shipped
    assert result.valid and result.validated and result.status == "valid"
    assert set(result.layer_states().values()) == {"run", "not applicable"}


def test_installed_artefacts_are_available() -> None:
    assert validation.validation_unavailable() is None
    assert validate_document(INVOICE).layer_states() == dict.fromkeys(("xml", "schema", "en16931", "peppol"), "run")


async def test_serve_refuses_to_start_when_a_needed_layer_cannot_run(
    without_artefacts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = {"reject": 0}

    async def companies_with_policy(pool: object, policy: str, value: str) -> int:
        assert policy == "inbound_validation"
        return counts[value]

    monkeypatch.setattr(directory_queries, "companies_with_policy", companies_with_policy)
    pool: Any = None  # the query is stood in for
    with pytest.raises(ConfigError) as caught:
        await check_validation_available(Settings(validate_on_submit=True), pool)
    message = str(caught.value)
    assert message.startswith("validation: the rule layers cannot run (") and "\n" not in message
    assert "validation.on_submit = true" in message and without_artefacts in message
    counts["reject"] = 2
    with pytest.raises(ConfigError, match="2 companies with inbound_validation = reject"):
        await check_validation_available(Settings(validate_on_submit=False), pool)
    counts["reject"] = 0
    await check_validation_available(Settings(validate_on_submit=False), pool)  # nothing needs them


async def test_with_the_layers_installed_serve_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    pool: Any = None
    await check_validation_available(Settings(validate_on_submit=True), pool)


# -- the engine ---------------------------------------------------------------------------------


def test_each_artefact_is_compiled_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = validation._Engine()
    compiled: list[str] = []

    class Counting:
        def __init__(self, compiler: Any) -> None:
            self.compiler = compiler

        def compile_stylesheet(self, **kwargs: Any) -> Any:
            compiled.append(kwargs["stylesheet_text"])
            return self.compiler.compile_stylesheet(**kwargs)

    engine.compiler = Counting(engine.compiler)
    monkeypatch.setattr(validation, "_ENGINE", engine)
    results = [validate_document(INVOICE) for _ in range(3)]
    assert all(r.valid for r in results) and len(compiled) == 2  # CEN EN 16931 and Peppol, once each
    assert all("CEN-EN16931-UBL.xslt" in t or "PEPPOL-EN16931-UBL.xslt" in t for t in compiled)


def test_an_artefact_is_hashed_again_only_when_its_file_changes(tmp_path: Path) -> None:
    engine = validation._Engine()
    artefact = tmp_path / "rules.xslt"
    artefact.write_text("one")
    first = engine.digest(artefact)
    engine.digests[artefact] = (engine.digests[artefact][0], "kept")
    assert engine.digest(artefact) == "kept"  # same file, same status: not read again
    artefact.write_text("two, longer")
    assert engine.digest(artefact) not in (first, "kept")
