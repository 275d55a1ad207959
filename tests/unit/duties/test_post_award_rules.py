"""Peppol BIS post-award documents get the UBL schema and their own BIS rules from the release
in force (orders, order responses, despatch advice, catalogues and their responses, invoice
responses, MLR), and what the gateway builds as an answer passes them."""

from __future__ import annotations

import pytest

from gateway.duties.responses import (
    Issue,
    LineStatus,
    build_invoice_response,
    build_mlr,
    build_order_response,
)
from gateway.duties.validation import validate_document
from tests.support.paths import EXAMPLES

NORWAY, FINLAND = "0192:991825827", "0216:003720774740"


@pytest.mark.parametrize(
    ("name", "layer", "artefact"),
    [
        ("order.xml", "peppol-order", "PEPPOLBIS-T01.xslt"),
        ("order-response.xml", "peppol-order-response", "PEPPOLBIS-T76.xslt"),
        ("despatch-advice.xml", "peppol-despatch-advice", "PEPPOLBIS-T16.xslt"),
        ("catalogue.xml", "peppol-catalogue", "PEPPOLBIS-T19.xslt"),
        ("catalogue-response.xml", "peppol-catalogue-response", "PEPPOLBIS-T58.xslt"),
        ("invoice-response.xml", "peppol-invoice-response", "PEPPOLBIS-T111.xslt"),
        ("message-level-response.xml", "mlr", "PEPPOLBIS-T71.xslt"),
    ],
)
def test_each_example_passes_the_schema_and_its_bis_rules_and_names_them(name: str, layer: str, artefact: str) -> None:
    result = validate_document((EXAMPLES / name).read_bytes())
    assert result.validated and result.valid, result.as_json()["errors"]
    assert result.layers_run == ["xml", "schema", layer]
    assert any(artefact in text for text in result.artefacts.values()), result.artefacts
    assert "ubl-2.1-xsd" in result.artefacts and "release" in result.artefacts


def test_an_order_that_breaks_a_bis_rule_is_invalid_with_the_rule_id() -> None:
    order = (EXAMPLES / "order.xml").read_bytes()
    broken = order.replace(b"<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>", b"")
    assert broken != order
    result = validate_document(broken)
    rules = {f.rule_id for f in result.findings if f.flag == "fatal"}
    assert not result.valid and any(r.startswith("PEPPOL-T01-") for r in rules), rules


def test_an_order_response_with_an_unknown_code_is_invalid() -> None:
    data = (
        (EXAMPLES / "order-response.xml")
        .read_bytes()
        .replace(b">AP</cbc:OrderResponseCode>", b">ZZ</cbc:OrderResponseCode>")
    )
    result = validate_document(data)
    assert not result.valid and any(f.rule_id.startswith("PEPPOL-T76-") for f in result.findings)


def test_an_extension_with_rules_of_its_own_is_not_checked_against_the_peppol_bis() -> None:
    result = validate_document((EXAMPLES / "ehf-order.xml").read_bytes())
    assert result.layers_run == ["xml"] and set(result.not_applicable) == {"schema", "en16931", "peppol"}


BUILT = {
    "mlr AP": lambda: build_mlr(sender=FINLAND, receiver=NORWAY, referenced_instance="i-1", code="AP"),
    "mlr RE": lambda: build_mlr(
        sender=FINLAND, receiver=NORWAY, referenced_instance="i-1", code="RE", description="refused",
        issues=[Issue("/Invoice/cbc:ID", "BV", "BR-CO-16 broken")], sender_name="S", receiver_name="R",
    ),
    "invoice response AP": lambda: build_invoice_response(
        sender=FINLAND, receiver=NORWAY, invoice_id="NS-1", invoice_type_code="380", code="AP",
        sender_name="Suomen Osto Oy", receiver_name="Nordic Supplies AS",
    ),
    "invoice response RE": lambda: build_invoice_response(
        sender=FINLAND, receiver=NORWAY, invoice_id="NS-1", invoice_type_code="381", code="RE",
        reasons=[("REF", "no such order")], actions=[("NOA", "send a new invoice")], note="refused",
        sender_name="Suomen Osto Oy", receiver_name="Nordic Supplies AS",
    ),
    "order response AP": lambda: build_order_response(
        seller=NORWAY, buyer=FINLAND, order_id="O-1", code="AP", seller_name="N", buyer_name="S", currency="EUR",
    ),
    "order response CA": lambda: build_order_response(
        seller=NORWAY, buyer=FINLAND, order_id="O-1", code="CA", seller_name="N", buyer_name="S", currency="NOK",
        lines=[LineStatus("1", "3", quantity="2", note="two only", item_name="Pen"), LineStatus("2", "7", item_name="Ink")],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", BUILT)
def test_every_answer_the_gateway_builds_passes_the_official_rules(name: str) -> None:
    result = validate_document(BUILT[name]())
    assert result.validated and result.valid, result.as_json()["errors"]
