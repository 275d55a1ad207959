"""The printable HTML of a content view: laid out, escaped, self-contained."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.documents.business import BusinessDocument
from gateway.documents.content import content_json, extract
from gateway.documents.render import render_html

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def page(name: str) -> str:
    return render_html(content_json(extract(BusinessDocument.parse((EXAMPLES / name).read_bytes()))))


def test_invoice_page_has_parties_lines_and_totals() -> None:
    html = page("invoice.xml")
    assert "<h1>Invoice</h1>" in html and "NS-2026-1001" in html
    for text in ("Nordic Supplies AS", "Suomen Osto Oy", "NO991825827MVA", "Ergonomic desk lamp", "12 EA",
                 "Amount due", "480.00 EUR", "Credit transfer", "NO9386011117947", "VATEX-EU-G"):  # fmt: skip
        assert text in html, text


@pytest.mark.parametrize(
    ("name", "title", "expected"),
    [
        ("credit-note.xml", "Credit note", "NS-2026-1001"),
        ("order.xml", "Purchase order", "LAMP-01"),
        ("order-response.xml", "Order response", "accepted"),
        ("despatch-advice.xml", "Despatch advice", "Delivered to"),
        ("catalogue.xml", "Catalogue", "2027-12-31"),
        ("invoice-response.xml", "Invoice response", "to document NS-2026-1001"),
        ("message-level-response.xml", "Message level response", "acknowledged"),
    ],
)
def test_every_document_type_renders(name: str, title: str, expected: str) -> None:
    html = page(name)
    assert f"<h1>{title}</h1>" in html and expected in html


def test_values_are_escaped_and_nothing_is_loaded() -> None:
    view = content_json(extract(BusinessDocument.parse((EXAMPLES / "invoice.xml").read_bytes())))
    view["seller"]["name"] = "<script>alert(1)</script>"
    view["lines"][0]["description"] = '"><img src=x onerror=alert(1)>'
    html = render_html(view)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page("invoice.xml"))  # no external assets


def test_amounts_keep_their_precision_and_group_thousands() -> None:
    view = content_json(extract(BusinessDocument.parse((EXAMPLES / "invoice.xml").read_bytes())))
    view["totals"]["payable"] = "1234567.5"
    view["lines"][0]["price"] = "95.2381"
    html = render_html(view)
    assert "1\u202f234\u202f567.50 EUR" in html and "95.2381" in html
