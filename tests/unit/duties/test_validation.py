"""Validation in layers with the official artefacts (UBL 2.1 XSD, CEN EN 16931, Peppol BIS
Billing 3.0), from the library, the command line and the API."""

from __future__ import annotations

from gateway.duties.validation import validate_document
from tests.support.paths import DATA, EXAMPLES

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
    from tests.support.as4 import sbd

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
