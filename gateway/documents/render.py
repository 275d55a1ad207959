"""A business document as a person reads it: print-ready HTML from its content view.

Rendered from the JSON view (:func:`~gateway.documents.content.content_json`), so a stored view
renders without parsing the UBL again. Every value is escaped by the template engine (autoescape
on), and the page loads nothing from anywhere: its styles are inline, it has no script.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import jinja2

__all__ = ["TITLES", "render_html"]

TITLES = {
    "invoice": "Invoice",
    "credit_note": "Credit note",
    "order": "Purchase order",
    "order_change": "Order change",
    "order_cancellation": "Order cancellation",
    "order_response": "Order response",
    "despatch_advice": "Despatch advice",
    "catalogue": "Catalogue",
    "catalogue_response": "Catalogue response",
    "invoice_response": "Invoice response",
    "mlr": "Message level response",
    "mls": "Message level status",
    "application_response": "Application response",
    "other": "Document",
}
# (seller's heading, buyer's heading) where the document names them otherwise
_ROLES = {
    "invoice": ("Seller", "Bill to"),
    "credit_note": ("Seller", "Credit to"),
    "order": ("Supplier", "Buyer"),
    "despatch_advice": ("Despatched by", "Delivered to"),
    "catalogue": ("Provider", "Receiver"),
}
_RESPONSE_CODES = {
    # BIS invoice response (UNCL4343 subset), order response and MLR codes
    "AB": "acknowledged",
    "IP": "in process",
    "UQ": "under query",
    "CA": "conditionally accepted",
    "RE": "rejected",
    "AP": "accepted",
    "PD": "paid",
}

# UNCL4461 payment means most seen on Peppol
_MEANS = {
    "1": "Not defined",
    "10": "Cash",
    "30": "Credit transfer",
    "31": "Debit transfer",
    "42": "Payment to bank account",
    "48": "Bank card",
    "49": "Direct debit",
    "57": "Standing agreement",
    "58": "SEPA credit transfer",
    "59": "SEPA direct debit",
    "97": "Clearing between partners",
    "ZZZ": "Mutually defined",
}


def _money(value: str | None) -> str:
    """An amount with thousands separated and at least two decimals, as written otherwise."""
    if value is None:
        return ""
    try:
        number = Decimal(value)
    except InvalidOperation:
        return str(value)
    exponent = number.as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{number:,.{places}f}".replace(",", "\u202f")


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.documents", "templates"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=False,
    )
    env.globals["money"] = _money
    env.globals["means"] = lambda code: _MEANS.get(code or "", "")
    return env.get_template("document.html")


def render_html(view: dict[str, Any]) -> str:
    """The page for a content view (as :func:`~gateway.documents.content.content_json` gives it)."""
    label = str(view.get("document") or "other")
    seller_role, buyer_role = _ROLES.get(label, ("Seller", "Buyer"))
    lines = view.get("lines") or []
    response = view.get("response") or {}
    return _template().render(
        c=view,
        title=TITLES.get(label, "Document"),
        seller_role=seller_role,
        buyer_role=buyer_role,
        has_vat=any(line.get("vat_category") or line.get("vat_rate") is not None for line in lines),
        has_amounts=any(line.get("line_amount") is not None for line in lines),
        response_text=_RESPONSE_CODES.get(response.get("code") or ""),
        payable_label="Amount due" if label in ("invoice", "credit_note") else "Total",
    )
