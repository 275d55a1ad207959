"""What a business document says, as typed data an ERP reads without a UBL parser.

:func:`extract` reads the tree :class:`~gateway.documents.business.BusinessDocument` parsed
already (no second parse) into a :class:`Content`: number, type code, dates, currency, the
parties (seller and buyer, or an answer's sender and receiver), lines, the VAT breakdown,
totals, payment means and terms, references and the embedded attachments (listed, never their
bytes). It covers the UBL 2.1 documents Peppol exchanges: invoice, credit note, order (change,
cancellation), order response, despatch advice, catalogue and the application responses
(invoice response, MLR, MLS). What a document does not say stays ``None``; a value that does
not read as a number or a date is ``None`` too, so one bad field never hides the rest.

:func:`content_json` is the JSON shape the API serves and the database keeps: amounts and
quantities as decimal strings (no float rounding), dates as ISO ``YYYY-MM-DD``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from lxml import etree

from gateway.documents.business import CAC, CBC, MLR_CUSTOMIZATION, MLS_CUSTOMIZATION, UBL, BusinessDocument

__all__ = [
    "VIEW_VERSION",
    "Address",
    "Attachment",
    "Contact",
    "Content",
    "ContentRow",
    "Line",
    "Party",
    "PaymentMeans",
    "References",
    "ResponseInfo",
    "ResponseIssue",
    "Totals",
    "VatBreakdown",
    "content_json",
    "content_row",
    "document_label",
    "extract",
    "read_content",
]

# Raised when the shape of the view changes, so stored views older than this are read again.
VIEW_VERSION = 1

log = structlog.get_logger("gateway.documents.content")


@dataclass(frozen=True)
class Address:
    street: str | None = None
    additional_street: str | None = None
    city: str | None = None
    postal_zone: str | None = None
    subdivision: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Contact:
    name: str | None = None
    telephone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Party:
    name: str | None = None  # legal registration name, else the trading name
    trading_name: str | None = None
    endpoint: str | None = None  # EndpointID as scheme:value
    ids: tuple[str, ...] = ()  # PartyIdentification, scheme:value when a scheme is given
    legal_id: str | None = None  # PartyLegalEntity/CompanyID
    vat_number: str | None = None  # PartyTaxScheme/CompanyID of the VAT scheme
    address: Address | None = None
    contact: Contact | None = None


@dataclass(frozen=True)
class Line:
    id: str | None = None
    description: str | None = None  # the item's name
    item_description: str | None = None
    item_id: str | None = None  # the seller's item identification
    quantity: Decimal | None = None
    unit: str | None = None
    price: Decimal | None = None
    line_amount: Decimal | None = None
    vat_category: str | None = None
    vat_rate: Decimal | None = None
    note: str | None = None
    status_code: str | None = None  # an order response line's status


@dataclass(frozen=True)
class VatBreakdown:
    category: str | None = None
    rate: Decimal | None = None
    taxable_amount: Decimal | None = None
    tax_amount: Decimal | None = None
    exemption_reason_code: str | None = None
    exemption_reason: str | None = None


@dataclass(frozen=True)
class Totals:
    line_extension: Decimal | None = None
    allowances: Decimal | None = None
    charges: Decimal | None = None
    tax_exclusive: Decimal | None = None
    tax: Decimal | None = None  # TaxTotal/TaxAmount in the document currency
    tax_inclusive: Decimal | None = None
    prepaid: Decimal | None = None
    rounding: Decimal | None = None
    payable: Decimal | None = None


@dataclass(frozen=True)
class PaymentMeans:
    code: str | None = None
    name: str | None = None
    payment_id: str | None = None
    account: str | None = None  # PayeeFinancialAccount/ID (an IBAN, usually)
    account_name: str | None = None
    bank: str | None = None  # the financial institution branch (BIC)
    due_date: dt.date | None = None


@dataclass(frozen=True)
class References:
    order: str | None = None
    sales_order: str | None = None
    contract: str | None = None
    buyer_reference: str | None = None
    project: str | None = None
    despatch: str | None = None
    receipt: str | None = None
    invoices: tuple[str, ...] = ()  # BillingReference: what a credit note corrects
    accounting_cost: str | None = None


@dataclass(frozen=True)
class Attachment:
    index: int  # position among the document's embedded objects: .../attachments/{index}
    id: str | None = None
    description: str | None = None
    filename: str | None = None
    mime_code: str | None = None
    size: int = 0  # decoded bytes


@dataclass(frozen=True)
class ResponseIssue:
    line: str | None = None  # LineReference/LineID: a line or an XPath location
    code: str | None = None  # status reason (MLR BV/BW/SV, invoice response reason)
    text: str | None = None


@dataclass(frozen=True)
class ResponseInfo:
    """What an answer says: its code and the document it answers."""

    code: str | None = None
    document: str | None = None  # the referenced document's ID
    document_type_code: str | None = None
    effective_date: dt.date | None = None
    description: str | None = None
    reasons: tuple[ResponseIssue, ...] = ()
    issues: tuple[ResponseIssue, ...] = ()


@dataclass(frozen=True)
class Content:
    document: str  # invoice, credit_note, order, order_response, despatch_advice, catalogue, ...
    root: str  # the root element's local name
    customization: str | None = None
    profile: str | None = None
    number: str | None = None
    type_code: str | None = None
    issue_date: dt.date | None = None
    issue_time: str | None = None
    due_date: dt.date | None = None
    delivery_date: dt.date | None = None
    tax_point_date: dt.date | None = None
    validity_start: dt.date | None = None
    validity_end: dt.date | None = None
    currency: str | None = None
    tax_currency: str | None = None
    notes: tuple[str, ...] = ()
    seller: Party | None = None
    buyer: Party | None = None
    sender: Party | None = None  # an application response's parties, who answers and who is told
    receiver: Party | None = None
    payee: Party | None = None
    delivery_address: Address | None = None
    lines: tuple[Line, ...] = ()
    vat_breakdown: tuple[VatBreakdown, ...] = ()
    totals: Totals | None = None
    payment_means: tuple[PaymentMeans, ...] = ()
    payment_terms: str | None = None
    references: References = References()
    attachments: tuple[Attachment, ...] = ()
    response: ResponseInfo | None = None
    version: int = VIEW_VERSION


# -- reading values


@functools.cache
def _clark(path: str) -> str:
    """A ``cbc:``/``cac:`` path in Clark notation: lxml then finds it without a namespace map
    (looked up on every call otherwise), which makes extraction several times faster."""
    return path.replace("cbc:", f"{{{CBC}}}").replace("cac:", f"{{{CAC}}}")


@functools.cache
def _steps(path: str) -> tuple[str, ...] | None:
    """A path of child steps as Clark tags; None for any other path."""
    if "//" in path or "[" in path or path.startswith("."):
        return None
    return tuple(_clark(step) for step in path.split("/"))


class _Tree:
    """The elements of one document read so far, each with its children indexed by tag (the
    first child of each tag, in document order). An extraction asks some two hundred child
    paths of a ten-line invoice; each step is then a dictionary read instead of a scan of the
    element's children. One per extraction (the elements it holds keep their proxies alive,
    so they are the same objects on every lookup)."""

    __slots__ = ("_children",)

    def __init__(self) -> None:
        self._children: dict[etree._Element, dict[Any, etree._Element]] = {}

    def _index(self, el: etree._Element) -> dict[Any, etree._Element]:
        children: dict[Any, etree._Element] = {}
        for found in el:  # comments and processing instructions index under their factories
            children.setdefault(found.tag, found)
        self._children[el] = children
        return children

    def at(self, el: etree._Element, path: str) -> etree._Element | None:
        """The first element at ``path``, ``el``'s children's children and so on."""
        steps = _steps(path)
        if steps is None:
            return el.find(_clark(path))
        cache = self._children
        found: etree._Element | None = el
        for tag in steps:
            children = cache.get(found)  # type: ignore[arg-type]
            if children is None:
                children = self._index(found)  # type: ignore[arg-type]
            found = children.get(tag)
            if found is None:
                return None
        return found


def _text(t: _Tree, el: etree._Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = t.at(el, path)
    if found is None or found.text is None:
        return None
    value = " ".join(found.text.split())
    return value or None


def _texts(el: etree._Element, path: str) -> tuple[str, ...]:
    return tuple(v for v in (" ".join((f.text or "").split()) for f in el.iterfind(_clark(path))) if v)


def _decimal(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _amount(t: _Tree, el: etree._Element | None, path: str) -> Decimal | None:
    return _decimal(_text(t, el, path))


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _id(el: etree._Element | None) -> str | None:
    """An identifier with its scheme: ``scheme:value``, or the value alone."""
    if el is None or not (el.text or "").strip():
        return None
    value = " ".join((el.text or "").split())
    scheme = el.get("schemeID")
    return f"{scheme}:{value}" if scheme else value


# -- parts


def _address(t: _Tree, el: etree._Element | None) -> Address | None:
    if el is None:
        return None
    address = Address(
        street=_text(t, el, "cbc:StreetName"),
        additional_street=_text(t, el, "cbc:AdditionalStreetName"),
        city=_text(t, el, "cbc:CityName"),
        postal_zone=_text(t, el, "cbc:PostalZone"),
        subdivision=_text(t, el, "cbc:CountrySubentity"),
        country=_text(t, el, "cac:Country/cbc:IdentificationCode"),
    )
    return None if address == Address() else address


def _party(t: _Tree, holder: etree._Element | None) -> Party | None:
    """A party in a role: wrapped in cac:Party (AccountingSupplierParty) or itself a party."""
    if holder is None:
        return None
    wrapped = t.at(holder, "cac:Party")
    party = wrapped if wrapped is not None else holder
    trading = _text(t, party, "cac:PartyName/cbc:Name")
    vat = None
    for scheme in party.iterfind(_clark("cac:PartyTaxScheme")):
        company_id = _text(t, scheme, "cbc:CompanyID")
        if company_id and (vat is None or _text(t, scheme, "cac:TaxScheme/cbc:ID") == "VAT"):
            vat = company_id
    contact = t.at(party, "cac:Contact")
    contact_view = (
        Contact(
            _text(t, contact, "cbc:Name"), _text(t, contact, "cbc:Telephone"), _text(t, contact, "cbc:ElectronicMail")
        )
        if contact is not None
        else None
    )
    return Party(
        name=_text(t, party, "cac:PartyLegalEntity/cbc:RegistrationName") or trading,
        trading_name=trading,
        endpoint=_id(t.at(party, "cbc:EndpointID")),
        ids=tuple(i for i in (_id(e) for e in party.iterfind(_clark("cac:PartyIdentification/cbc:ID"))) if i),
        legal_id=_text(t, party, "cac:PartyLegalEntity/cbc:CompanyID"),
        vat_number=vat,
        address=_address(t, t.at(party, "cac:PostalAddress")),
        contact=None if contact_view == Contact() else contact_view,
    )


def _first(t: _Tree, root: etree._Element, *roles: str) -> etree._Element | None:
    for role in roles:
        found = t.at(root, f"cac:{role}")
        if found is not None:
            return found
    return None


# Root -> (line element path, quantity element) for the documents that carry item lines.
_LINES = {
    "Invoice": ("cac:InvoiceLine", "cbc:InvoicedQuantity"),
    "CreditNote": ("cac:CreditNoteLine", "cbc:CreditedQuantity"),
    "Order": ("cac:OrderLine/cac:LineItem", "cbc:Quantity"),
    "OrderChange": ("cac:OrderLine/cac:LineItem", "cbc:Quantity"),
    "OrderResponse": ("cac:OrderLine/cac:LineItem", "cbc:Quantity"),
    "DespatchAdvice": ("cac:DespatchLine", "cbc:DeliveredQuantity"),
    "Catalogue": ("cac:CatalogueLine", ""),
}
_TYPE_CODES = ("InvoiceTypeCode", "CreditNoteTypeCode", "OrderTypeCode", "DespatchAdviceTypeCode")
_LABELS = {
    "Invoice": "invoice",
    "CreditNote": "credit_note",
    "Order": "order",
    "OrderChange": "order_change",
    "OrderCancellation": "order_cancellation",
    "OrderResponse": "order_response",
    "DespatchAdvice": "despatch_advice",
    "Catalogue": "catalogue",
}


def document_label(root: str, namespace: str, customization: str) -> str:
    """What kind of document it is, in words an ERP switches on."""
    if not namespace.startswith(UBL):
        return "other"
    if root == "ApplicationResponse":
        if customization.startswith(MLS_CUSTOMIZATION):
            return "mls"
        if customization.startswith(MLR_CUSTOMIZATION):
            return "mlr"
        if "invoice_response" in customization:
            return "invoice_response"
        if "catalogue_response" in customization:
            return "catalogue_response"
        return "application_response"
    return _LABELS.get(root, "other")


def _line(t: _Tree, el: etree._Element, quantity: str, catalogue: bool) -> Line:
    item = t.at(el, "cac:Item")
    price_path = "cac:Price/cbc:PriceAmount"
    if catalogue:
        price_path = "cac:RequiredItemLocationQuantity/" + price_path
    quantity_el = t.at(el, quantity) if quantity else None
    tax = t.at(item, "cac:ClassifiedTaxCategory") if item is not None else None
    return Line(
        id=_text(t, el, "cbc:ID"),
        description=_text(t, item, "cbc:Name"),
        item_description=_text(t, item, "cbc:Description"),
        item_id=_text(t, item, "cac:SellersItemIdentification/cbc:ID"),
        quantity=_decimal(_text(t, el, quantity)) if quantity else None,
        unit=(quantity_el.get("unitCode") if quantity_el is not None else None)
        or (_text(t, el, "cbc:OrderableUnit") if catalogue else None),
        price=_amount(t, el, price_path),
        line_amount=_amount(t, el, "cbc:LineExtensionAmount"),
        vat_category=_text(t, tax, "cbc:ID"),
        vat_rate=_amount(t, tax, "cbc:Percent"),
        note=_text(t, el, "cbc:Note"),
        status_code=_text(t, el, "cbc:LineStatusCode"),
    )


def _currency_of(t: _Tree, el: etree._Element, path: str) -> str | None:
    found = t.at(el, path)
    return found.get("currencyID") if found is not None else None


def _vat(t: _Tree, root: etree._Element, currency: str | None) -> tuple[Decimal | None, tuple[VatBreakdown, ...]]:
    """The tax total in the document currency (a second TaxTotal may give it in the tax
    currency), and its breakdown by category and rate."""
    totals = list(root.iterfind(_clark("cac:TaxTotal")))
    if not totals:
        return None, ()
    in_currency = (x for x in totals if currency is not None and _currency_of(t, x, "cbc:TaxAmount") == currency)
    chosen = next(in_currency, totals[0])
    breakdown = tuple(
        VatBreakdown(
            category=_text(t, sub, "cac:TaxCategory/cbc:ID"),
            rate=_amount(t, sub, "cac:TaxCategory/cbc:Percent"),
            taxable_amount=_amount(t, sub, "cbc:TaxableAmount"),
            tax_amount=_amount(t, sub, "cbc:TaxAmount"),
            exemption_reason_code=_text(t, sub, "cac:TaxCategory/cbc:TaxExemptionReasonCode"),
            exemption_reason=_text(t, sub, "cac:TaxCategory/cbc:TaxExemptionReason"),
        )
        for sub in chosen.iterfind(_clark("cac:TaxSubtotal"))
    )
    return _amount(t, chosen, "cbc:TaxAmount"), breakdown


def _totals(t: _Tree, root: etree._Element, tax: Decimal | None) -> Totals | None:
    monetary = _first(t, root, "LegalMonetaryTotal", "AnticipatedMonetaryTotal", "RequestedMonetaryTotal")
    if monetary is None and tax is None:
        return None
    return Totals(
        line_extension=_amount(t, monetary, "cbc:LineExtensionAmount"),
        allowances=_amount(t, monetary, "cbc:AllowanceTotalAmount"),
        charges=_amount(t, monetary, "cbc:ChargeTotalAmount"),
        tax_exclusive=_amount(t, monetary, "cbc:TaxExclusiveAmount"),
        tax=tax,
        tax_inclusive=_amount(t, monetary, "cbc:TaxInclusiveAmount"),
        prepaid=_amount(t, monetary, "cbc:PrepaidAmount"),
        rounding=_amount(t, monetary, "cbc:PayableRoundingAmount"),
        payable=_amount(t, monetary, "cbc:PayableAmount"),
    )


def _payment_means(t: _Tree, el: etree._Element) -> PaymentMeans:
    code = t.at(el, "cbc:PaymentMeansCode")
    return PaymentMeans(
        code=_text(t, el, "cbc:PaymentMeansCode"),
        name=code.get("name") if code is not None else None,
        payment_id=_text(t, el, "cbc:PaymentID"),
        account=_text(t, el, "cac:PayeeFinancialAccount/cbc:ID"),
        account_name=_text(t, el, "cac:PayeeFinancialAccount/cbc:Name"),
        bank=_text(t, el, "cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID"),
        due_date=_date(_text(t, el, "cbc:PaymentDueDate")),
    )


def _base64_size(text: str | None) -> int:
    """The decoded size of base64 text, without decoding it."""
    if not text:
        return 0
    length = len(text) - sum(text.count(c) for c in " \t\r\n")
    padding = 0
    stripped = text.rstrip()
    while padding < 2 and stripped.endswith("=" * (padding + 1)):
        padding += 1
    return max(0, length * 3 // 4 - padding)


def _attachments(t: _Tree, root: etree._Element) -> tuple[Attachment, ...]:
    """Every embedded object, in the order ``.../attachments/{index}`` numbers them."""
    found = []
    for index, obj in enumerate(root.iter(f"{{{CBC}}}EmbeddedDocumentBinaryObject")):
        reference = obj.getparent()
        reference = reference.getparent() if reference is not None else None  # Attachment -> DocumentReference
        found.append(
            Attachment(
                index=index,
                id=_text(t, reference, "cbc:ID"),
                description=_text(t, reference, "cbc:DocumentDescription"),
                filename=obj.get("filename"),
                mime_code=obj.get("mimeCode"),
                size=_base64_size(obj.text),
            )
        )
    return tuple(found)


def _references(t: _Tree, root: etree._Element, name: str) -> References:
    return References(
        order=_text(t, root, "cac:OrderReference/cbc:ID") if name != "Order" else None,
        sales_order=_text(t, root, "cac:OrderReference/cbc:SalesOrderID"),
        contract=_text(t, root, "cac:ContractDocumentReference/cbc:ID") or _text(t, root, "cac:Contract/cbc:ID"),
        buyer_reference=_text(t, root, "cbc:BuyerReference") or _text(t, root, "cbc:CustomerReference"),
        project=_text(t, root, "cac:ProjectReference/cbc:ID"),
        despatch=_text(t, root, "cac:DespatchDocumentReference/cbc:ID"),
        receipt=_text(t, root, "cac:ReceiptDocumentReference/cbc:ID"),
        invoices=_texts(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID"),
        accounting_cost=_text(t, root, "cbc:AccountingCost"),
    )


def _issue(t: _Tree, el: etree._Element) -> ResponseIssue:
    return ResponseIssue(
        line=_text(t, el, "cac:LineReference/cbc:LineID"),
        code=_text(t, el, "cac:Response/cac:Status/cbc:StatusReasonCode")
        or _text(t, el, "cac:Response/cbc:ResponseCode"),
        text=_text(t, el, "cac:Response/cbc:Description") or _text(t, el, "cac:Response/cac:Status/cbc:StatusReason"),
    )


def _response(t: _Tree, root: etree._Element, name: str) -> ResponseInfo | None:
    if name == "OrderResponse":
        code = _text(t, root, "cbc:OrderResponseCode")
        return ResponseInfo(code=code, document=_text(t, root, "cac:OrderReference/cbc:ID"))
    if name != "ApplicationResponse":
        return None
    answer = t.at(root, "cac:DocumentResponse")
    if answer is None:
        return ResponseInfo()
    reasons = tuple(
        ResponseIssue(code=_text(t, status, "cbc:StatusReasonCode"), text=_text(t, status, "cbc:StatusReason"))
        for status in answer.iterfind(_clark("cac:Response/cac:Status"))
    )
    return ResponseInfo(
        code=_text(t, answer, "cac:Response/cbc:ResponseCode"),
        document=_text(t, answer, "cac:DocumentReference/cbc:ID"),
        document_type_code=_text(t, answer, "cac:DocumentReference/cbc:DocumentTypeCode"),
        effective_date=_date(_text(t, answer, "cac:Response/cbc:EffectiveDate")),
        description=_text(t, answer, "cac:Response/cbc:Description"),
        reasons=reasons,
        issues=tuple(_issue(t, line) for line in answer.iterfind(_clark("cac:LineResponse"))),
    )


def _delivery_date(t: _Tree, root: etree._Element) -> dt.date | None:
    for path in (
        "cac:Delivery/cbc:ActualDeliveryDate",
        "cac:Delivery/cac:RequestedDeliveryPeriod/cbc:StartDate",
        "cac:Delivery/cac:PromisedDeliveryPeriod/cbc:StartDate",
        "cac:Shipment/cac:Delivery/cbc:ActualDeliveryDate",
        "cac:Shipment/cac:Delivery/cac:EstimatedDeliveryPeriod/cbc:StartDate",
        "cac:InvoicePeriod/cbc:EndDate",
    ):
        found = _date(_text(t, root, path))
        if found is not None:
            return found
    return None


def _parties(t: _Tree, root: etree._Element, name: str, label: str) -> dict[str, Party | None]:
    if name in ("Invoice", "CreditNote"):
        return {
            "seller": _party(t, _first(t, root, "AccountingSupplierParty")),
            "buyer": _party(t, _first(t, root, "AccountingCustomerParty")),
            "payee": _party(t, _first(t, root, "PayeeParty")),
        }
    if name == "DespatchAdvice":
        return {
            "seller": _party(t, _first(t, root, "DespatchSupplierParty", "SellerSupplierParty")),
            "buyer": _party(t, _first(t, root, "DeliveryCustomerParty", "BuyerCustomerParty")),
        }
    if name == "Catalogue":
        return {
            "seller": _party(t, _first(t, root, "ProviderParty", "SellerSupplierParty")),
            "buyer": _party(t, _first(t, root, "ReceiverParty", "ContractorCustomerParty")),
        }
    if name == "ApplicationResponse":
        sender, receiver = _party(t, _first(t, root, "SenderParty")), _party(t, _first(t, root, "ReceiverParty"))
        parties: dict[str, Party | None] = {"sender": sender, "receiver": receiver}
        if label == "invoice_response":  # the buyer answers the seller's invoice
            parties.update(seller=receiver, buyer=sender)
        elif label == "catalogue_response":
            parties.update(seller=receiver, buyer=sender)
        return parties
    return {
        "seller": _party(t, _first(t, root, "SellerSupplierParty")),
        "buyer": _party(t, _first(t, root, "BuyerCustomerParty")),
    }


def extract(document: BusinessDocument) -> Content:
    """The typed view of a parsed business document (its tree is read, not changed)."""
    t = _Tree()
    root = document.root
    name = document.name
    customization = _text(t, root, "cbc:CustomizationID")
    label = document_label(name, document.namespace, customization or "")
    currency = _text(t, root, "cbc:DocumentCurrencyCode")
    tax, breakdown = _vat(t, root, currency)
    totals = _totals(t, root, tax)
    if currency is None:  # an order response or a catalogue names it on its amounts only
        currency = _currency_of(t, root, "cac:LegalMonetaryTotal/cbc:PayableAmount") or _currency_of(
            t, root, ".//cbc:PriceAmount"
        )
    lines: tuple[Line, ...] = ()
    if name in _LINES:
        path, quantity = _LINES[name]
        lines = tuple(_line(t, el, quantity, name == "Catalogue") for el in root.iterfind(_clark(path)))
    means = tuple(_payment_means(t, el) for el in root.iterfind(_clark("cac:PaymentMeans")))
    due = _date(_text(t, root, "cbc:DueDate")) or next((m.due_date for m in means if m.due_date), None)
    terms = _texts(root, "cac:PaymentTerms/cbc:Note")
    parties = _parties(t, root, name, label)
    delivery = t.at(root, "cac:Delivery/cac:DeliveryLocation/cac:Address")
    if delivery is None:
        delivery = t.at(root, "cac:Delivery/cac:DeliveryAddress")
    return Content(
        document=label,
        root=name,
        customization=customization,
        profile=_text(t, root, "cbc:ProfileID"),
        number=_text(t, root, "cbc:ID"),
        type_code=next((code for code in (_text(t, root, f"cbc:{c}") for c in _TYPE_CODES) if code), None),
        issue_date=_date(_text(t, root, "cbc:IssueDate")),
        issue_time=_text(t, root, "cbc:IssueTime"),
        due_date=due,
        delivery_date=_delivery_date(t, root),
        tax_point_date=_date(_text(t, root, "cbc:TaxPointDate")),
        validity_start=_date(_text(t, root, "cac:ValidityPeriod/cbc:StartDate")),
        validity_end=_date(_text(t, root, "cac:ValidityPeriod/cbc:EndDate")),
        currency=currency,
        tax_currency=_text(t, root, "cbc:TaxCurrencyCode"),
        notes=_texts(root, "cbc:Note"),
        seller=parties.get("seller"),
        buyer=parties.get("buyer"),
        sender=parties.get("sender"),
        receiver=parties.get("receiver"),
        payee=parties.get("payee"),
        delivery_address=_address(t, delivery),
        lines=lines,
        vat_breakdown=breakdown,
        totals=totals,
        payment_means=means,
        payment_terms="; ".join(terms) or None,
        references=_references(t, root, name),
        attachments=_attachments(t, root),
        response=_response(t, root, name),
    )


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")  # fixed-point: "1E+3" in a document reads "1000"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}


def content_json(content: Content) -> dict[str, Any]:
    """The view as JSON: decimals as strings, dates as ISO strings, absent values null."""
    result: dict[str, Any] = _plain(content)
    return result


def _encode(value: Any) -> Any:
    """:func:`_plain` one level at a time, for the JSON encoder (which walks the rest in C)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value.__dict__  # a view's dataclass: its fields, in their order, and nothing else


def _content_text(content: Content) -> str:
    """``content_json`` as compact JSON text, written without building the JSON tree first."""
    return json.dumps(content, default=_encode, separators=(",", ":"))


@dataclass(frozen=True)
class ContentRow:
    """What is kept of a view: the listing fields (typed, for filtering) and the whole view."""

    number: str | None
    issue_date: dt.date | None
    due_date: dt.date | None
    seller_name: str | None
    buyer_name: str | None
    payable_amount: Decimal | None
    currency: str | None
    view: str  # content_json as JSON text
    version: int = VIEW_VERSION


def content_row(content: Content) -> ContentRow:
    """The row kept for a view."""
    return ContentRow(
        number=content.number,
        issue_date=content.issue_date,
        due_date=content.due_date,
        seller_name=content.seller.name if content.seller else None,
        buyer_name=content.buyer.name if content.buyer else None,
        payable_amount=content.totals.payable if content.totals else None,
        currency=content.currency,
        view=_content_text(content),
        version=content.version,
    )


def read_content(document: BusinessDocument) -> ContentRow | None:
    """The row for a document, or None when its view cannot be read: a document is stored and
    sent whatever its content says, so a failure here never refuses it (it is logged)."""
    try:
        return content_row(extract(document))
    except Exception as exc:  # the view is an aid; storing the document is what matters
        log.warning("content_not_extracted", root=document.name, error=type(exc).__name__, reason=str(exc)[:200])
        return None
