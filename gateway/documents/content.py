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


def _at(el: etree._Element, path: str) -> etree._Element | None:
    """The first element at ``path``: child steps walked in C (``iterchildren``), an order of
    magnitude faster than ``find``, which goes through ElementPath in Python on every call."""
    steps = _steps(path)
    if steps is None:
        return el.find(_clark(path))
    found = el
    for tag in steps:
        child = next(found.iterchildren(tag), None)
        if child is None:
            return None
        found = child
    return found


def _text(el: etree._Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = _at(el, path)
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


def _amount(el: etree._Element | None, path: str) -> Decimal | None:
    return _decimal(_text(el, path))


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


def _address(el: etree._Element | None) -> Address | None:
    if el is None:
        return None
    address = Address(
        street=_text(el, "cbc:StreetName"),
        additional_street=_text(el, "cbc:AdditionalStreetName"),
        city=_text(el, "cbc:CityName"),
        postal_zone=_text(el, "cbc:PostalZone"),
        subdivision=_text(el, "cbc:CountrySubentity"),
        country=_text(el, "cac:Country/cbc:IdentificationCode"),
    )
    return None if address == Address() else address


def _party(holder: etree._Element | None) -> Party | None:
    """A party in a role: wrapped in cac:Party (AccountingSupplierParty) or itself a party."""
    if holder is None:
        return None
    wrapped = _at(holder, "cac:Party")
    party = wrapped if wrapped is not None else holder
    trading = _text(party, "cac:PartyName/cbc:Name")
    vat = None
    for scheme in party.iterfind(_clark("cac:PartyTaxScheme")):
        company_id = _text(scheme, "cbc:CompanyID")
        if company_id and (vat is None or _text(scheme, "cac:TaxScheme/cbc:ID") == "VAT"):
            vat = company_id
    contact = _at(party, "cac:Contact")
    contact_view = (
        Contact(_text(contact, "cbc:Name"), _text(contact, "cbc:Telephone"), _text(contact, "cbc:ElectronicMail"))
        if contact is not None
        else None
    )
    return Party(
        name=_text(party, "cac:PartyLegalEntity/cbc:RegistrationName") or trading,
        trading_name=trading,
        endpoint=_id(_at(party, "cbc:EndpointID")),
        ids=tuple(i for i in (_id(e) for e in party.iterfind(_clark("cac:PartyIdentification/cbc:ID"))) if i),
        legal_id=_text(party, "cac:PartyLegalEntity/cbc:CompanyID"),
        vat_number=vat,
        address=_address(_at(party, "cac:PostalAddress")),
        contact=None if contact_view == Contact() else contact_view,
    )


def _first(root: etree._Element, *roles: str) -> etree._Element | None:
    for role in roles:
        found = _at(root, f"cac:{role}")
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


def _line(el: etree._Element, quantity: str, catalogue: bool) -> Line:
    item = _at(el, "cac:Item")
    price_path = "cac:Price/cbc:PriceAmount"
    if catalogue:
        price_path = "cac:RequiredItemLocationQuantity/" + price_path
    quantity_el = _at(el, quantity) if quantity else None
    tax = _at(item, "cac:ClassifiedTaxCategory") if item is not None else None
    return Line(
        id=_text(el, "cbc:ID"),
        description=_text(item, "cbc:Name"),
        item_description=_text(item, "cbc:Description"),
        item_id=_text(item, "cac:SellersItemIdentification/cbc:ID"),
        quantity=_decimal(_text(el, quantity)) if quantity else None,
        unit=(quantity_el.get("unitCode") if quantity_el is not None else None)
        or (_text(el, "cbc:OrderableUnit") if catalogue else None),
        price=_amount(el, price_path),
        line_amount=_amount(el, "cbc:LineExtensionAmount"),
        vat_category=_text(tax, "cbc:ID"),
        vat_rate=_amount(tax, "cbc:Percent"),
        note=_text(el, "cbc:Note"),
        status_code=_text(el, "cbc:LineStatusCode"),
    )


def _currency_of(el: etree._Element, path: str) -> str | None:
    found = _at(el, path)
    return found.get("currencyID") if found is not None else None


def _vat(root: etree._Element, currency: str | None) -> tuple[Decimal | None, tuple[VatBreakdown, ...]]:
    """The tax total in the document currency (a second TaxTotal may give it in the tax
    currency), and its breakdown by category and rate."""
    totals = list(root.iterfind(_clark("cac:TaxTotal")))
    if not totals:
        return None, ()
    in_currency = (t for t in totals if currency is not None and _currency_of(t, "cbc:TaxAmount") == currency)
    chosen = next(in_currency, totals[0])
    breakdown = tuple(
        VatBreakdown(
            category=_text(sub, "cac:TaxCategory/cbc:ID"),
            rate=_amount(sub, "cac:TaxCategory/cbc:Percent"),
            taxable_amount=_amount(sub, "cbc:TaxableAmount"),
            tax_amount=_amount(sub, "cbc:TaxAmount"),
            exemption_reason_code=_text(sub, "cac:TaxCategory/cbc:TaxExemptionReasonCode"),
            exemption_reason=_text(sub, "cac:TaxCategory/cbc:TaxExemptionReason"),
        )
        for sub in chosen.iterfind(_clark("cac:TaxSubtotal"))
    )
    return _amount(chosen, "cbc:TaxAmount"), breakdown


def _totals(root: etree._Element, tax: Decimal | None) -> Totals | None:
    monetary = _first(root, "LegalMonetaryTotal", "AnticipatedMonetaryTotal", "RequestedMonetaryTotal")
    if monetary is None and tax is None:
        return None
    return Totals(
        line_extension=_amount(monetary, "cbc:LineExtensionAmount"),
        allowances=_amount(monetary, "cbc:AllowanceTotalAmount"),
        charges=_amount(monetary, "cbc:ChargeTotalAmount"),
        tax_exclusive=_amount(monetary, "cbc:TaxExclusiveAmount"),
        tax=tax,
        tax_inclusive=_amount(monetary, "cbc:TaxInclusiveAmount"),
        prepaid=_amount(monetary, "cbc:PrepaidAmount"),
        rounding=_amount(monetary, "cbc:PayableRoundingAmount"),
        payable=_amount(monetary, "cbc:PayableAmount"),
    )


def _payment_means(el: etree._Element) -> PaymentMeans:
    code = _at(el, "cbc:PaymentMeansCode")
    return PaymentMeans(
        code=_text(el, "cbc:PaymentMeansCode"),
        name=code.get("name") if code is not None else None,
        payment_id=_text(el, "cbc:PaymentID"),
        account=_text(el, "cac:PayeeFinancialAccount/cbc:ID"),
        account_name=_text(el, "cac:PayeeFinancialAccount/cbc:Name"),
        bank=_text(el, "cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID"),
        due_date=_date(_text(el, "cbc:PaymentDueDate")),
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


def _attachments(root: etree._Element) -> tuple[Attachment, ...]:
    """Every embedded object, in the order ``.../attachments/{index}`` numbers them."""
    found = []
    for index, obj in enumerate(root.iter(f"{{{CBC}}}EmbeddedDocumentBinaryObject")):
        reference = obj.getparent()
        reference = reference.getparent() if reference is not None else None  # Attachment -> DocumentReference
        found.append(
            Attachment(
                index=index,
                id=_text(reference, "cbc:ID"),
                description=_text(reference, "cbc:DocumentDescription"),
                filename=obj.get("filename"),
                mime_code=obj.get("mimeCode"),
                size=_base64_size(obj.text),
            )
        )
    return tuple(found)


def _references(root: etree._Element, name: str) -> References:
    return References(
        order=_text(root, "cac:OrderReference/cbc:ID") if name != "Order" else None,
        sales_order=_text(root, "cac:OrderReference/cbc:SalesOrderID"),
        contract=_text(root, "cac:ContractDocumentReference/cbc:ID") or _text(root, "cac:Contract/cbc:ID"),
        buyer_reference=_text(root, "cbc:BuyerReference") or _text(root, "cbc:CustomerReference"),
        project=_text(root, "cac:ProjectReference/cbc:ID"),
        despatch=_text(root, "cac:DespatchDocumentReference/cbc:ID"),
        receipt=_text(root, "cac:ReceiptDocumentReference/cbc:ID"),
        invoices=_texts(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID"),
        accounting_cost=_text(root, "cbc:AccountingCost"),
    )


def _issue(el: etree._Element) -> ResponseIssue:
    return ResponseIssue(
        line=_text(el, "cac:LineReference/cbc:LineID"),
        code=_text(el, "cac:Response/cac:Status/cbc:StatusReasonCode") or _text(el, "cac:Response/cbc:ResponseCode"),
        text=_text(el, "cac:Response/cbc:Description") or _text(el, "cac:Response/cac:Status/cbc:StatusReason"),
    )


def _response(root: etree._Element, name: str) -> ResponseInfo | None:
    if name == "OrderResponse":
        code = _text(root, "cbc:OrderResponseCode")
        return ResponseInfo(code=code, document=_text(root, "cac:OrderReference/cbc:ID"))
    if name != "ApplicationResponse":
        return None
    answer = _at(root, "cac:DocumentResponse")
    if answer is None:
        return ResponseInfo()
    reasons = tuple(
        ResponseIssue(code=_text(status, "cbc:StatusReasonCode"), text=_text(status, "cbc:StatusReason"))
        for status in answer.iterfind(_clark("cac:Response/cac:Status"))
    )
    return ResponseInfo(
        code=_text(answer, "cac:Response/cbc:ResponseCode"),
        document=_text(answer, "cac:DocumentReference/cbc:ID"),
        document_type_code=_text(answer, "cac:DocumentReference/cbc:DocumentTypeCode"),
        effective_date=_date(_text(answer, "cac:Response/cbc:EffectiveDate")),
        description=_text(answer, "cac:Response/cbc:Description"),
        reasons=reasons,
        issues=tuple(_issue(line) for line in answer.iterfind(_clark("cac:LineResponse"))),
    )


def _delivery_date(root: etree._Element) -> dt.date | None:
    for path in (
        "cac:Delivery/cbc:ActualDeliveryDate",
        "cac:Delivery/cac:RequestedDeliveryPeriod/cbc:StartDate",
        "cac:Delivery/cac:PromisedDeliveryPeriod/cbc:StartDate",
        "cac:Shipment/cac:Delivery/cbc:ActualDeliveryDate",
        "cac:Shipment/cac:Delivery/cac:EstimatedDeliveryPeriod/cbc:StartDate",
        "cac:InvoicePeriod/cbc:EndDate",
    ):
        found = _date(_text(root, path))
        if found is not None:
            return found
    return None


def _parties(root: etree._Element, name: str, label: str) -> dict[str, Party | None]:
    if name in ("Invoice", "CreditNote"):
        return {
            "seller": _party(_first(root, "AccountingSupplierParty")),
            "buyer": _party(_first(root, "AccountingCustomerParty")),
            "payee": _party(_first(root, "PayeeParty")),
        }
    if name == "DespatchAdvice":
        return {
            "seller": _party(_first(root, "DespatchSupplierParty", "SellerSupplierParty")),
            "buyer": _party(_first(root, "DeliveryCustomerParty", "BuyerCustomerParty")),
        }
    if name == "Catalogue":
        return {
            "seller": _party(_first(root, "ProviderParty", "SellerSupplierParty")),
            "buyer": _party(_first(root, "ReceiverParty", "ContractorCustomerParty")),
        }
    if name == "ApplicationResponse":
        sender, receiver = _party(_first(root, "SenderParty")), _party(_first(root, "ReceiverParty"))
        parties: dict[str, Party | None] = {"sender": sender, "receiver": receiver}
        if label == "invoice_response":  # the buyer answers the seller's invoice
            parties.update(seller=receiver, buyer=sender)
        elif label == "catalogue_response":
            parties.update(seller=receiver, buyer=sender)
        return parties
    return {
        "seller": _party(_first(root, "SellerSupplierParty")),
        "buyer": _party(_first(root, "BuyerCustomerParty")),
    }


def extract(document: BusinessDocument) -> Content:
    """The typed view of a parsed business document (its tree is read, not changed)."""
    root = document.root
    name = document.name
    customization = _text(root, "cbc:CustomizationID")
    label = document_label(name, document.namespace, customization or "")
    currency = _text(root, "cbc:DocumentCurrencyCode")
    tax, breakdown = _vat(root, currency)
    totals = _totals(root, tax)
    if currency is None:  # an order response or a catalogue names it on its amounts only
        currency = _currency_of(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") or _currency_of(
            root, ".//cbc:PriceAmount"
        )
    lines: tuple[Line, ...] = ()
    if name in _LINES:
        path, quantity = _LINES[name]
        lines = tuple(_line(el, quantity, name == "Catalogue") for el in root.iterfind(_clark(path)))
    means = tuple(_payment_means(el) for el in root.iterfind(_clark("cac:PaymentMeans")))
    due = _date(_text(root, "cbc:DueDate")) or next((m.due_date for m in means if m.due_date), None)
    terms = _texts(root, "cac:PaymentTerms/cbc:Note")
    parties = _parties(root, name, label)
    delivery = _at(root, "cac:Delivery/cac:DeliveryLocation/cac:Address")
    if delivery is None:
        delivery = _at(root, "cac:Delivery/cac:DeliveryAddress")
    return Content(
        document=label,
        root=name,
        customization=customization,
        profile=_text(root, "cbc:ProfileID"),
        number=_text(root, "cbc:ID"),
        type_code=next((t for t in (_text(root, f"cbc:{c}") for c in _TYPE_CODES) if t), None),
        issue_date=_date(_text(root, "cbc:IssueDate")),
        issue_time=_text(root, "cbc:IssueTime"),
        due_date=due,
        delivery_date=_delivery_date(root),
        tax_point_date=_date(_text(root, "cbc:TaxPointDate")),
        validity_start=_date(_text(root, "cac:ValidityPeriod/cbc:StartDate")),
        validity_end=_date(_text(root, "cac:ValidityPeriod/cbc:EndDate")),
        currency=currency,
        tax_currency=_text(root, "cbc:TaxCurrencyCode"),
        notes=_texts(root, "cbc:Note"),
        seller=parties.get("seller"),
        buyer=parties.get("buyer"),
        sender=parties.get("sender"),
        receiver=parties.get("receiver"),
        payee=parties.get("payee"),
        delivery_address=_address(delivery),
        lines=lines,
        vat_breakdown=breakdown,
        totals=totals,
        payment_means=means,
        payment_terms="; ".join(terms) or None,
        references=_references(root, name),
        attachments=_attachments(root),
        response=_response(root, name),
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
        view=json.dumps(content_json(content), separators=(",", ":")),
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
