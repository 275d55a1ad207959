"""A UBL business document, read once where it enters the gateway.

:class:`BusinessDocument` holds the parsed tree and what later steps ask of it (root name,
CustomizationID, ProfileID, ID, IssueDate, the parties' EndpointIDs and countries), so deriving
the envelope, wrapping it and classifying the document reuse one parse. :func:`read_document`
tells what a UBL document is and what it answers, so answers can be linked to what they answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from lxml import etree

from as4._xml import parse_xml

__all__ = ["BusinessDocument", "ReadDocument", "read_document"]

UBL = "urn:oasis:names:specification:ubl:schema:xsd:"
CBC = f"{UBL}CommonBasicComponents-2"
CAC = f"{UBL}CommonAggregateComponents-2"
MLS_CUSTOMIZATION = "urn:peppol:edec:mls:1.0"
MLR_CUSTOMIZATION = "urn:fdc:peppol.eu:poacc:trns:mlr:3"

# Root element -> (sending party, receiving party) as UBL names them.
PARTIES = {
    "Invoice": ("AccountingSupplierParty", "AccountingCustomerParty"),
    "CreditNote": ("AccountingSupplierParty", "AccountingCustomerParty"),
    "Order": ("BuyerCustomerParty", "SellerSupplierParty"),
    "OrderResponse": ("SellerSupplierParty", "BuyerCustomerParty"),
    "OrderChange": ("BuyerCustomerParty", "SellerSupplierParty"),
    "OrderCancellation": ("BuyerCustomerParty", "SellerSupplierParty"),
    "DespatchAdvice": ("DespatchSupplierParty", "DeliveryCustomerParty"),
    "Catalogue": ("ProviderParty", "ReceiverParty"),
    "ApplicationResponse": ("SenderParty", "ReceiverParty"),
}
# The parties whose names an answer carries back (the documents that are answered by name).
_NAMED_ROLES = {
    "Invoice": ("AccountingSupplierParty", "AccountingCustomerParty"),
    "CreditNote": ("AccountingSupplierParty", "AccountingCustomerParty"),
    "Order": ("BuyerCustomerParty", "SellerSupplierParty"),
}


@dataclass(frozen=True)
class ReadDocument:
    """What a received UBL document is, and what it answers if it is an answer."""

    root: str  # local name
    customization: str
    document_id: str
    kind: str  # "business", "response", "mls", "mlr" or "report"
    answers: tuple[str, ...] = ()  # ids it references (instance identifier or document id)
    code: str | None = None
    reasons: tuple[str, ...] = field(default_factory=tuple)
    sender_name: str | None = None
    receiver_name: str | None = None


def _t(el: etree._Element, path: str) -> str:
    return " ".join((el.findtext(path) or "").split())


def _c(local: str) -> str:
    return f"{{{CBC}}}{local}"


def _a(local: str) -> str:
    return f"{{{CAC}}}{local}"


def _holder(doc: etree._Element, role: str | None) -> etree._Element | None:
    """The party in a role: wrapped in cac:Party (AccountingSupplierParty) or itself a party
    (a Catalogue's ProviderParty, an ApplicationResponse's SenderParty)."""
    if role is None:
        return None
    holder = doc.find(_a(role))
    if holder is None:
        return None
    party = holder.find(_a("Party"))
    return party if party is not None else holder


def _party_name(doc: etree._Element, role: str | None) -> str | None:
    party = _holder(doc, role)
    if party is None:
        return None
    for path in (f"{_a('PartyLegalEntity')}/{_c('RegistrationName')}", f"{_a('PartyName')}/{_c('Name')}"):
        name = _t(party, path)
        if name:
            return name
    return None


def _endpoint_id(party: etree._Element | None) -> str | None:
    if party is None:
        return None
    el = party.find(_c("EndpointID"))
    if el is None or not (el.text or "").strip() or not el.get("schemeID"):
        return None
    return f"{el.get('schemeID')}:{(el.text or '').strip()}"


def _country(party: etree._Element | None) -> str | None:
    if party is None:
        return None
    for path in (
        f"{_a('PostalAddress')}/{_a('Country')}/{_c('IdentificationCode')}",
        f"{_a('PartyLegalEntity')}/{_a('RegistrationAddress')}/{_a('Country')}/{_c('IdentificationCode')}",
    ):
        text = party.findtext(path)
        if text and text.strip():
            return text.strip().upper()
    return None


def read_document(doc: etree._Element) -> ReadDocument:
    """Classify a business document and, for answers, read what they answer and their code."""
    local = etree.QName(doc).localname
    namespace = etree.QName(doc).namespace or ""
    customization = _t(doc, _c("CustomizationID"))
    doc_id = _t(doc, _c("ID"))
    roles = _NAMED_ROLES.get(local, (None, None))
    sender_name, receiver_name = _party_name(doc, roles[0]), _party_name(doc, roles[1])
    if namespace.startswith("urn:fdc:peppol:") and "statistics-report" in namespace:
        return ReadDocument(local, customization, doc_id, "report")
    if local == "ApplicationResponse":
        reference = _t(doc, f"{_a('DocumentResponse')}/{_a('DocumentReference')}/{_c('ID')}")
        code = _t(doc, f"{_a('DocumentResponse')}/{_a('Response')}/{_c('ResponseCode')}") or None
        reasons = tuple(
            " ".join((el.text or "").split())
            for el in doc.iterfind(f"{_a('DocumentResponse')}//{_c('StatusReasonCode')}")
        )
        if customization.startswith(MLS_CUSTOMIZATION):
            kind = "mls"
        elif customization.startswith(MLR_CUSTOMIZATION):
            kind = "mlr"
        else:
            kind = "response"
        return ReadDocument(local, customization, doc_id, kind, (reference,) if reference else (), code, reasons)
    if local == "OrderResponse":
        reference = _t(doc, f"{_a('OrderReference')}/{_c('ID')}")
        code = _t(doc, _c("OrderResponseCode")) or None
        return ReadDocument(local, customization, doc_id, "response", (reference,) if reference else (), code)
    return ReadDocument(local, customization, doc_id, "business", sender_name=sender_name, receiver_name=receiver_name)


@dataclass(frozen=True)
class BusinessDocument:
    """A parsed business document and what the gateway reads from it.

    ``data`` is the bytes that were parsed, when the document arrived bare; a document taken
    out of an envelope has none (its bytes are the envelope's). ``root`` is shared, never
    changed: whoever needs to move it into another tree copies it."""

    root: etree._Element
    data: bytes | None = None

    @classmethod
    def parse(cls, data: bytes) -> BusinessDocument:
        """Parse bytes (hostile-input safe); raises ``as4.As4Error`` when they are not XML."""
        return cls(parse_xml(data, "business document", large=True), data)

    @cached_property
    def namespace(self) -> str:
        return etree.QName(self.root).namespace or ""

    @cached_property
    def name(self) -> str:
        """The root element's local name (``Invoice``)."""
        return str(etree.QName(self.root).localname)

    def _text(self, local: str) -> str:
        return (self.root.findtext(_c(local)) or "").strip()

    @property
    def customization(self) -> str:
        return self._text("CustomizationID")

    @property
    def profile(self) -> str:
        return self._text("ProfileID")

    @property
    def ubl_version(self) -> str:
        return self._text("UBLVersionID")

    @property
    def document_id(self) -> str:
        return self._text("ID")

    @property
    def issue_date(self) -> str:
        return self._text("IssueDate")

    def _party(self, side: int) -> etree._Element | None:
        roles = PARTIES.get(self.name)
        return _holder(self.root, roles[side]) if roles else None

    @property
    def sender_endpoint(self) -> str | None:
        """The sending party's EndpointID as ``scheme:value``, if the document has one."""
        return _endpoint_id(self._party(0))

    @property
    def receiver_endpoint(self) -> str | None:
        return _endpoint_id(self._party(1))

    @property
    def sender_country(self) -> str | None:
        """The sending party's country (postal address, else its legal registration address)."""
        return _country(self._party(0))

    @property
    def receiver_country(self) -> str | None:
        return _country(self._party(1))

    @cached_property
    def read(self) -> ReadDocument:
        """What the document is (kind, what it answers), see :func:`read_document`."""
        return read_document(self.root)
