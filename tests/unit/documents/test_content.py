"""The typed content view, per document type: what an ERP reads instead of the UBL."""

from __future__ import annotations

import base64
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.documents.business import BusinessDocument
from gateway.documents.content import Content, content_json, extract

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
DATA = ROOT / "tests" / "support" / "data"


def view(name: str) -> Content:
    return extract(BusinessDocument.parse((EXAMPLES / name).read_bytes()))


PDF = base64.b64encode(b"%PDF-1.4 " + b"x" * 991).decode()  # 1000 bytes

RICH_INVOICE = f"""<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0</cbc:CustomizationID>
  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>
  <cbc:ID>INV-77</cbc:ID>
  <cbc:IssueDate>2026-03-01</cbc:IssueDate>
  <cbc:DueDate>not-a-date</cbc:DueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:Note>Thank   you</cbc:Note>
  <cbc:DocumentCurrencyCode>SEK</cbc:DocumentCurrencyCode>
  <cbc:TaxCurrencyCode>EUR</cbc:TaxCurrencyCode>
  <cbc:BuyerReference>REF-1</cbc:BuyerReference>
  <cac:OrderReference><cbc:ID>PO-9</cbc:ID><cbc:SalesOrderID>SO-3</cbc:SalesOrderID></cac:OrderReference>
  <cac:ContractDocumentReference><cbc:ID>CT-2026</cbc:ID></cac:ContractDocumentReference>
  <cac:AdditionalDocumentReference>
    <cbc:ID>timesheet</cbc:ID>
    <cbc:DocumentDescription>Hours of March</cbc:DocumentDescription>
    <cac:Attachment><cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="hours.pdf">{PDF}</cbc:EmbeddedDocumentBinaryObject></cac:Attachment>
  </cac:AdditionalDocumentReference>
  <cac:ProjectReference><cbc:ID>PRJ-5</cbc:ID></cac:ProjectReference>
  <cac:AccountingSupplierParty><cac:Party>
    <cbc:EndpointID schemeID="0007">5567321707</cbc:EndpointID>
    <cac:PartyIdentification><cbc:ID schemeID="0088">7300010000001</cbc:ID></cac:PartyIdentification>
    <cac:PartyName><cbc:Name>Svensk Handel</cbc:Name></cac:PartyName>
    <cac:PostalAddress><cbc:StreetName>Kungsgatan 1</cbc:StreetName><cbc:CityName>Stockholm</cbc:CityName>
      <cbc:PostalZone>11143</cbc:PostalZone><cac:Country><cbc:IdentificationCode>SE</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
    <cac:PartyTaxScheme><cbc:CompanyID>GODKAND FOR F-SKATT</cbc:CompanyID><cac:TaxScheme><cbc:ID>TAX</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    <cac:PartyTaxScheme><cbc:CompanyID>SE556732170701</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    <cac:PartyLegalEntity><cbc:RegistrationName>Svensk Handel AB</cbc:RegistrationName><cbc:CompanyID>5567321707</cbc:CompanyID></cac:PartyLegalEntity>
    <cac:Contact><cbc:Name>Eva</cbc:Name><cbc:ElectronicMail>eva@example.se</cbc:ElectronicMail></cac:Contact>
  </cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party>
    <cbc:EndpointID schemeID="0192">991825827</cbc:EndpointID>
    <cac:PartyLegalEntity><cbc:RegistrationName>Nordic &amp; Co</cbc:RegistrationName></cac:PartyLegalEntity>
  </cac:Party></cac:AccountingCustomerParty>
  <cac:Delivery><cbc:ActualDeliveryDate>2026-02-27</cbc:ActualDeliveryDate>
    <cac:DeliveryLocation><cac:Address><cbc:CityName>Oslo</cbc:CityName><cac:Country><cbc:IdentificationCode>NO</cbc:IdentificationCode></cac:Country></cac:Address></cac:DeliveryLocation>
  </cac:Delivery>
  <cac:PaymentMeans><cbc:PaymentMeansCode name="Credit transfer">30</cbc:PaymentMeansCode><cbc:PaymentID>OCR 12345</cbc:PaymentID>
    <cac:PayeeFinancialAccount><cbc:ID>SE4550000000058398257466</cbc:ID><cbc:Name>Svensk Handel</cbc:Name>
      <cac:FinancialInstitutionBranch><cbc:ID>ESSESESS</cbc:ID></cac:FinancialInstitutionBranch></cac:PayeeFinancialAccount>
  </cac:PaymentMeans>
  <cac:PaymentTerms><cbc:Note>30 days net</cbc:Note></cac:PaymentTerms>
  <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">22.00</cbc:TaxAmount></cac:TaxTotal>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="SEK">262.50</cbc:TaxAmount>
    <cac:TaxSubtotal><cbc:TaxableAmount currencyID="SEK">1000.00</cbc:TaxableAmount><cbc:TaxAmount currencyID="SEK">250.00</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory></cac:TaxSubtotal>
    <cac:TaxSubtotal><cbc:TaxableAmount currencyID="SEK">100.00</cbc:TaxableAmount><cbc:TaxAmount currencyID="SEK">12.50</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>12.5</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory></cac:TaxSubtotal>
  </cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="SEK">1100.00</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="SEK">1100.00</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="SEK">1362.50</cbc:TaxInclusiveAmount>
    <cbc:PrepaidAmount currencyID="SEK">100.00</cbc:PrepaidAmount>
    <cbc:PayableAmount currencyID="SEK">1262.50</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine><cbc:ID>1</cbc:ID><cbc:Note>March</cbc:Note><cbc:InvoicedQuantity unitCode="HUR">10.5</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="SEK">1000.00</cbc:LineExtensionAmount>
    <cac:Item><cbc:Description>Consulting hours</cbc:Description><cbc:Name>Consulting</cbc:Name>
      <cac:SellersItemIdentification><cbc:ID>C-1</cbc:ID></cac:SellersItemIdentification>
      <cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="SEK">95.2381</cbc:PriceAmount></cac:Price></cac:InvoiceLine>
  <cac:InvoiceLine><cbc:ID>2</cbc:ID><cbc:InvoicedQuantity unitCode="EA">one</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="SEK">100.00</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>Book</cbc:Name><cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>12.5</cbc:Percent>
      <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="SEK">100</cbc:PriceAmount></cac:Price></cac:InvoiceLine>
</Invoice>""".encode()


def test_example_invoice() -> None:
    c = view("invoice.xml")
    assert (c.document, c.root, c.number, c.type_code) == ("invoice", "Invoice", "NS-2026-1001", "380")
    assert (c.issue_date, c.due_date, c.currency) == (date(2026, 11, 24), date(2026, 12, 24), "EUR")
    assert c.seller is not None and c.buyer is not None
    assert (c.seller.name, c.seller.endpoint, c.seller.vat_number, c.seller.legal_id) == (
        "Nordic Supplies AS", "0192:991825827", "NO991825827MVA", "991825827",
    )  # fmt: skip
    assert c.seller.address is not None and c.seller.address.city == "Oslo" and c.seller.address.country == "NO"
    assert (c.buyer.name, c.buyer.endpoint) == ("Suomen Osto Oy", "0216:003720774740")
    (line,) = c.lines
    assert (line.id, line.description, line.quantity, line.unit, line.price, line.line_amount) == (
        "1", "Ergonomic desk lamp", Decimal(12), "EA", Decimal("40.00"), Decimal("480.00"),
    )  # fmt: skip
    assert (line.vat_category, line.vat_rate) == ("G", Decimal(0))
    (vat,) = c.vat_breakdown
    assert (vat.category, vat.taxable_amount, vat.tax_amount, vat.exemption_reason_code) == (
        "G", Decimal("480.00"), Decimal("0.00"), "VATEX-EU-G",
    )  # fmt: skip
    assert c.totals is not None and c.totals.payable == Decimal("480.00") and c.totals.tax_inclusive == Decimal("480")
    assert c.payment_means[0].code == "30" and c.payment_means[0].account == "NO9386011117947"
    assert c.references.buyer_reference == "OSTO-5521"
    assert c.attachments == () and c.response is None


def test_rich_invoice_reads_every_field() -> None:
    c = extract(BusinessDocument.parse(RICH_INVOICE))
    assert c.due_date is None  # unreadable: null, the rest still read
    assert c.notes == ("Thank you",) and (c.currency, c.tax_currency) == ("SEK", "EUR")
    assert c.delivery_date == date(2026, 2, 27)
    assert c.delivery_address is not None and c.delivery_address.city == "Oslo"
    seller = c.seller
    assert seller is not None and seller.name == "Svensk Handel AB" and seller.trading_name == "Svensk Handel"
    assert seller.vat_number == "SE556732170701" and seller.ids == ("0088:7300010000001",)
    assert seller.contact is not None and seller.contact.email == "eva@example.se" and seller.contact.telephone is None
    assert c.buyer is not None and c.buyer.name == "Nordic & Co" and c.buyer.address is None
    # the tax total in the document currency, not the one in the tax currency
    assert c.totals is not None and c.totals.tax == Decimal("262.50")
    assert [(v.rate, v.tax_amount) for v in c.vat_breakdown] == [
        (Decimal(25), Decimal("250.00")),
        (Decimal("12.5"), Decimal("12.50")),
    ]
    assert (c.totals.prepaid, c.totals.payable) == (Decimal("100.00"), Decimal("1262.50"))
    first, second = c.lines
    assert (first.quantity, first.unit, first.price, first.item_id, first.note) == (
        Decimal("10.5"), "HUR", Decimal("95.2381"), "C-1", "March",
    )  # fmt: skip
    assert first.item_description == "Consulting hours"
    assert second.quantity is None and second.unit == "EA"  # "one" is not a number
    means = c.payment_means[0]
    assert (means.name, means.payment_id, means.account_name, means.bank) == (
        "Credit transfer", "OCR 12345", "Svensk Handel", "ESSESESS",
    )  # fmt: skip
    assert c.payment_terms == "30 days net"
    refs = c.references
    assert (refs.order, refs.sales_order, refs.contract, refs.buyer_reference, refs.project) == (
        "PO-9", "SO-3", "CT-2026", "REF-1", "PRJ-5",
    )  # fmt: skip
    (attachment,) = c.attachments
    assert (attachment.index, attachment.id, attachment.description) == (0, "timesheet", "Hours of March")
    assert (attachment.filename, attachment.mime_code, attachment.size) == ("hours.pdf", "application/pdf", 1000)


def test_json_keeps_decimals_exact_and_dates_iso() -> None:
    data = content_json(extract(BusinessDocument.parse(RICH_INVOICE)))
    json.dumps(data)  # plain JSON
    assert data["totals"]["payable"] == "1262.50" and data["lines"][0]["price"] == "95.2381"
    assert data["issue_date"] == "2026-03-01" and data["due_date"] is None
    assert data["attachments"][0] == {
        "index": 0, "id": "timesheet", "description": "Hours of March", "filename": "hours.pdf",
        "mime_code": "application/pdf", "size": 1000,
    }  # fmt: skip
    assert "content" not in json.dumps(data["attachments"])  # listed, never the bytes
    assert data["version"] == 1


def test_credit_note() -> None:
    c = view("credit-note.xml")
    assert (c.document, c.number, c.type_code) == ("credit_note", "NS-CN-2026-0007", "381")
    assert c.references.invoices == ("NS-2026-1001",)
    assert c.lines[0].quantity == Decimal(12) and c.lines[0].unit == "EA"
    assert c.totals is not None and c.totals.payable == Decimal("480.00")
    assert c.seller is not None and c.seller.name == "Nordic Supplies AS"


@pytest.mark.parametrize("name", ["order.xml", "ehf-order.xml"])
def test_order(name: str) -> None:
    c = view(name)
    assert (c.document, c.number, c.currency) == ("order", "OSTO-5521", "EUR")
    assert c.buyer is not None and c.buyer.name == "Suomen Osto Oy" and c.buyer.ids == ("0216:003720774740",)
    assert c.seller is not None and c.seller.name == "Nordic Supplies AS"
    assert c.references.order is None  # an order is the order
    (line,) = c.lines
    assert (line.id, line.item_id, line.quantity, line.price) == ("1", "LAMP-01", Decimal(12), Decimal("40.00"))
    assert c.totals is not None and c.totals.payable == Decimal("480.00")  # the anticipated total
    assert c.delivery_address is not None and c.delivery_address.postal_zone == "00100"


def test_order_response() -> None:
    c = view("order-response.xml")
    assert (c.document, c.number, c.issue_date) == ("order_response", "NS-OR-88", date(2026, 11, 21))
    assert c.response is not None and (c.response.code, c.response.document) == ("AP", "OSTO-5521")
    assert c.references.order == "OSTO-5521"
    assert c.seller is not None and c.seller.name == "Nordic Supplies AS"
    assert c.buyer is not None and c.buyer.endpoint == "0216:003720774740"
    assert c.totals is None and c.lines == ()


def test_despatch_advice() -> None:
    c = view("despatch-advice.xml")
    assert (c.document, c.number, c.delivery_date) == ("despatch_advice", "NS-DA-311", date(2026, 11, 25))
    assert c.seller is not None and c.seller.name == "Nordic Supplies AS"  # the despatch supplier
    assert c.buyer is not None and c.buyer.name == "Suomen Osto Oy"  # the delivery customer
    (line,) = c.lines
    assert (line.quantity, line.unit, line.description, line.price) == (Decimal(12), "EA", "Ergonomic desk lamp", None)
    assert c.references.order == "OSTO-5521"


def test_catalogue() -> None:
    c = view("catalogue.xml")
    assert (c.document, c.number) == ("catalogue", "NS-CAT-2027")
    assert (c.validity_start, c.validity_end) == (date(2027, 1, 1), date(2027, 12, 31))
    assert c.seller is not None and c.seller.name == "Nordic Supplies AS"  # the provider party, unwrapped
    assert c.buyer is not None and c.buyer.endpoint == "0216:003720774740"
    (line,) = c.lines
    assert (line.unit, line.price, line.quantity, line.item_id) == ("EA", Decimal("40.00"), None, "LAMP-01")
    assert c.currency == "EUR"  # named on its prices only


def test_invoice_response() -> None:
    c = view("invoice-response.xml")
    assert (c.document, c.root, c.number) == ("invoice_response", "ApplicationResponse", "IMR-4411")
    assert c.response is not None
    assert (c.response.code, c.response.document, c.response.document_type_code) == ("AP", "NS-2026-1001", "380")
    assert c.response.effective_date == date(2026, 11, 24)
    assert c.sender is not None and c.sender.name == "Suomen Osto Oy"
    # the buyer answers the seller
    assert c.buyer == c.sender and c.seller == c.receiver and c.seller is not None
    assert c.seller.name == "Nordic Supplies AS"


def test_message_level_response() -> None:
    c = view("message-level-response.xml")
    assert (c.document, c.number) == ("mlr", "MLR-7")
    assert c.response is not None and (c.response.code, c.response.document) == ("AB", "NS-2026-1001")
    assert c.seller is None and c.buyer is None  # an MLR is between the parties' systems
    assert c.sender is not None and c.receiver is not None and c.receiver.endpoint == "0192:991825827"


def test_mlr_with_issues() -> None:
    xml = b"""<ApplicationResponse xmlns="urn:oasis:names:specification:ubl:schema:xsd:ApplicationResponse-2"
      xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
      xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
      <cbc:CustomizationID>urn:fdc:peppol.eu:poacc:trns:mlr:3</cbc:CustomizationID><cbc:ID>M1</cbc:ID>
      <cac:DocumentResponse><cac:Response><cbc:ResponseCode>RE</cbc:ResponseCode><cbc:Description>bad</cbc:Description></cac:Response>
        <cac:DocumentReference><cbc:ID>INV-1</cbc:ID></cac:DocumentReference>
        <cac:LineResponse><cac:LineReference><cbc:LineID>/Invoice/cbc:ID</cbc:LineID></cac:LineReference>
          <cac:Response><cbc:ResponseCode>RE</cbc:ResponseCode><cbc:Description>BR-02 broken</cbc:Description>
            <cac:Status><cbc:StatusReasonCode>BV</cbc:StatusReasonCode></cac:Status></cac:Response></cac:LineResponse>
      </cac:DocumentResponse></ApplicationResponse>"""
    c = extract(BusinessDocument.parse(xml))
    assert c.response is not None and c.response.description == "bad" and c.issue_date is None
    (issue,) = c.response.issues
    assert (issue.line, issue.code, issue.text) == ("/Invoice/cbc:ID", "BV", "BR-02 broken")


def test_bis3_test_invoice_and_a_document_that_is_not_ubl() -> None:
    c = extract(BusinessDocument.parse((DATA / "invoice-bis3.xml").read_bytes()))
    assert c.document == "invoice" and c.number and c.totals is not None and c.totals.payable is not None
    other = extract(BusinessDocument.parse(b"<Report xmlns='urn:example'><ID>1</ID></Report>"))
    assert (other.document, other.root, other.number, other.seller, other.lines) == ("other", "Report", None, None, ())
