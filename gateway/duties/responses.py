"""Peppol answers as UBL documents, with no I/O: the Message Level Status between service
providers (MLS 1.0), and the business responses a receiving company sends back: Message Level
Response (BIS 36a), Invoice Response (BIS 63a) and Order Response (BIS 28a).

Builders take typed input and return UBL bytes; :func:`read_document` (kept here from
:mod:`gateway.documents.business`) tells what a received UBL document is and what it answers.
No package ships the official schemas or rules of these documents, so :func:`check_mls` and
:func:`check_response` implement their published rules here (MLS rule ids ``SCH-MLS-nn``; the
BIS code lists for the responses).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from gateway.documents.business import ReadDocument, read_document
from gateway.duties.errors import ResponseError

__all__ = [
    "IR_CODES",
    "IR_REASONS",
    "OR_CODES",
    "Issue",
    "LineStatus",
    "ReadDocument",
    "ResponseError",
    "build_invoice_response",
    "build_mlr",
    "build_mls",
    "build_order_response",
    "check_mls",
    "check_response",
    "read_document",
    "spid_of_seat",
]

UBL = "urn:oasis:names:specification:ubl:schema:xsd:"
CBC = f"{UBL}CommonBasicComponents-2"
CAC = f"{UBL}CommonAggregateComponents-2"
AR_NS = f"{UBL}ApplicationResponse-2"
OR_NS = f"{UBL}OrderResponse-2"

MLS_CUSTOMIZATION = "urn:peppol:edec:mls:1.0"
MLS_PROFILE = "urn:peppol:edec:mls"
MLR_CUSTOMIZATION = "urn:fdc:peppol.eu:poacc:trns:mlr:3"
MLR_PROFILE = "urn:fdc:peppol.eu:poacc:bis:mlr:3"
IR_CUSTOMIZATION = "urn:fdc:peppol.eu:poacc:trns:invoice_response:3"
IR_PROFILE = "urn:fdc:peppol.eu:poacc:bis:invoice_response:3"
ORDER_RESPONSE_CUSTOMIZATION = "urn:fdc:peppol.eu:poacc:trns:order_response:3"
ORDERING_PROFILE = "urn:fdc:peppol.eu:poacc:bis:ordering:3"

MLS_CODES = ("AP", "AB", "RE")
MLS_REASONS = ("BV", "BW", "FD", "SV")  # business rule violation (fatal / warning), delivery failure, syntax
FAILURE_REASONS = ("BV", "FD", "SV")
MLR_CODES = ("AB", "AP", "RE")
# Invoice Response: UNCL4343 subset, clarification reasons and actions (BIS 63a code lists).
IR_CODES = ("AB", "IP", "UQ", "CA", "RE", "AP", "PD")
IR_REASONS = ("NON", "REF", "LEG", "REC", "QUA", "DEL", "PRI", "QTY", "ITM", "PAY", "UNR", "FIN", "PPD", "OTH")
IR_ACTIONS = ("NOA", "PIN", "NIN", "CNF", "CNP", "CNA", "OTH")
IR_NEEDS_REASON = ("UQ", "CA", "RE")
# Order Response: UNCL1225 subset, line status UNCL1229 subset (BIS 28a).
OR_CODES = ("AB", "RE", "AP", "CA")
OR_LINE_CODES = ("3", "5", "7")  # changed, accepted without amendment, not accepted


def spid_of_seat(seat_id: str) -> str:
    """A service provider's SPID (ICD 0242) from its seat id: the six digits of ``POP000306``."""
    digits = seat_id[-6:]
    if not digits.isdigit():
        raise ValueError(f"{seat_id!r} is not a seat id ending in six digits")
    return f"0242:{digits}"


@dataclass(frozen=True)
class Issue:
    """One problem reported in an MLS or MLR: where, which kind (BV/BW/FD/SV), what."""

    location: str
    reason: str
    text: str


@dataclass(frozen=True)
class LineStatus:
    """An order line's answer in an Order Response (accepted with changes)."""

    line_id: str
    status: str  # OR_LINE_CODES
    quantity: str | None = None
    unit_code: str | None = None
    note: str | None = None
    item_name: str | None = None  # the ordered item's name, repeated from the order line


def _el(parent: etree._Element, ns: str, local: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{local}", attrs)
    if text is not None:
        el.text = text
    return el


def _root(ns: str, local: str) -> etree._Element:
    return etree.Element(f"{{{ns}}}{local}", nsmap={None: ns, "cac": CAC, "cbc": CBC})


def _split(participant: str) -> tuple[str, str]:
    scheme, _, value = participant.partition(":")
    if not scheme or not value:
        raise ResponseError("participant", f"{participant!r} is not ICD:value")
    return scheme, value


def _party(parent: etree._Element, role: str, participant: str, name: str | None, *, wrapped: bool) -> None:
    holder = _el(parent, CAC, role)
    party = _el(holder, CAC, "Party") if wrapped else holder
    scheme, value = _split(participant)
    _el(party, CBC, "EndpointID", value, schemeID=scheme)
    if name:
        _el(_el(party, CAC, "PartyLegalEntity"), CBC, "RegistrationName", name)


def _header(root: etree._Element, customization: str, profile: str, issued: datetime, doc_id: str | None) -> None:
    _el(root, CBC, "CustomizationID", customization)
    _el(root, CBC, "ProfileID", profile)
    _el(root, CBC, "ID", doc_id or str(uuid.uuid4()))
    stamp = issued.astimezone(UTC)
    _el(root, CBC, "IssueDate", stamp.date().isoformat())
    _el(root, CBC, "IssueTime", stamp.strftime("%H:%M:%SZ"))


def _issues(document_response: etree._Element, issues: Sequence[Issue]) -> None:
    for issue in issues:
        line = _el(document_response, CAC, "LineResponse")
        _el(_el(line, CAC, "LineReference"), CBC, "LineID", issue.location or "NA")
        response = _el(line, CAC, "Response")
        _el(response, CBC, "Description", issue.text)
        _el(_el(response, CAC, "Status"), CBC, "StatusReasonCode", issue.reason)


def _bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _message_level(
    customization: str,
    profile: str,
    sender: tuple[str, str | None],
    receiver: tuple[str, str | None],
    referenced_instance: str,
    code: str,
    description: str | None,
    issues: Sequence[Issue],
    issued: datetime | None,
    doc_id: str | None,
) -> bytes:
    """The ApplicationResponse shape MLS and MLR share: one response about one message, with
    the issues found in it."""
    root = _root(AR_NS, "ApplicationResponse")
    _header(root, customization, profile, issued or datetime.now(UTC), doc_id)
    _party(root, "SenderParty", sender[0], sender[1], wrapped=False)
    _party(root, "ReceiverParty", receiver[0], receiver[1], wrapped=False)
    document_response = _el(root, CAC, "DocumentResponse")
    response = _el(document_response, CAC, "Response")
    _el(response, CBC, "ResponseCode", code)
    if description:
        _el(response, CBC, "Description", description)
    _el(_el(document_response, CAC, "DocumentReference"), CBC, "ID", referenced_instance)
    _issues(document_response, issues)
    return _bytes(root)


def build_mls(
    *,
    sender_spid: str,
    receiver_spid: str,
    referenced_instance: str,
    code: str,
    description: str | None = None,
    issues: Sequence[Issue] = (),
    issued: datetime | None = None,
    mls_id: str | None = None,
) -> bytes:
    """A Message Level Status from the receiving provider (C3) to the sending one (C2) about the
    business message whose SBDH InstanceIdentifier is ``referenced_instance``."""
    if code not in MLS_CODES:
        raise ResponseError("code", f"an MLS code is one of {', '.join(MLS_CODES)}")
    if code == "RE" and (not description or not any(i.reason in FAILURE_REASONS for i in issues)):
        raise ResponseError("issues", "a negative MLS needs a description and at least one failure")
    return _message_level(
        MLS_CUSTOMIZATION, MLS_PROFILE, (sender_spid, None), (receiver_spid, None), referenced_instance, code,
        description, issues, issued, mls_id,
    )  # fmt: skip


def build_mlr(
    *,
    sender: str,
    receiver: str,
    referenced_instance: str,
    code: str,
    description: str | None = None,
    issues: Sequence[Issue] = (),
    issued: datetime | None = None,
    sender_name: str | None = None,
    receiver_name: str | None = None,
) -> bytes:
    """A Message Level Response (BIS 36a) from the receiving company about a received message."""
    if code not in MLR_CODES:
        raise ResponseError("code", f"an MLR code is one of {', '.join(MLR_CODES)}")
    if code == "RE" and not issues:
        raise ResponseError("issues", "a rejecting MLR lists at least one issue")
    for issue in issues:
        if issue.reason not in ("BV", "BW", "SV"):
            raise ResponseError("issues", f"issue code {issue.reason!r} is not BV, BW or SV")
    # The BIS MLR's parties are their endpoint ids only: the names are not part of its data model.
    return _message_level(
        MLR_CUSTOMIZATION, MLR_PROFILE, (sender, None), (receiver, None), referenced_instance, code,
        description, issues, issued, None,
    )  # fmt: skip


def build_invoice_response(
    *,
    sender: str,
    receiver: str,
    invoice_id: str,
    invoice_type_code: str,
    code: str,
    reasons: Sequence[tuple[str, str]] = (),
    actions: Sequence[tuple[str, str]] = (),
    note: str | None = None,
    issued: datetime | None = None,
    sender_name: str | None = None,
    receiver_name: str | None = None,
) -> bytes:
    """An Invoice Response (BIS 63a) from the buyer about a received invoice or credit note:
    a status code, with (reason code, text) clarifications and requested actions."""
    if code not in IR_CODES:
        raise ResponseError("code", f"an invoice response code is one of {', '.join(IR_CODES)}")
    for reason, _ in reasons:
        if reason not in IR_REASONS:
            raise ResponseError("reasons", f"reason {reason!r} is not one of {', '.join(IR_REASONS)}")
    for action, _ in actions:
        if action not in IR_ACTIONS:
            raise ResponseError("actions", f"action {action!r} is not one of {', '.join(IR_ACTIONS)}")
    if code in IR_NEEDS_REASON and not reasons:
        raise ResponseError("reasons", f"status {code} needs at least one reason")
    if not sender_name or not receiver_name:  # BIS 63a: both parties carry their legal names
        raise ResponseError("names", "an invoice response names its sender and its receiver")
    root = _root(AR_NS, "ApplicationResponse")
    _header(root, IR_CUSTOMIZATION, IR_PROFILE, issued or datetime.now(UTC), None)
    if note:
        _el(root, CBC, "Note", note)
    _party(root, "SenderParty", sender, sender_name, wrapped=False)
    _party(root, "ReceiverParty", receiver, receiver_name, wrapped=False)
    document_response = _el(root, CAC, "DocumentResponse")
    response = _el(document_response, CAC, "Response")
    _el(response, CBC, "ResponseCode", code, listID="UNCL4343OpSubset")
    for reason, text in reasons:
        status = _el(response, CAC, "Status")
        _el(status, CBC, "StatusReasonCode", reason, listID="OPStatusReason")
        if text:
            _el(status, CBC, "StatusReason", text)
    for action, text in actions:
        status = _el(response, CAC, "Status")
        _el(status, CBC, "StatusReasonCode", action, listID="OPStatusAction")
        if text:
            _el(status, CBC, "StatusReason", text)
    reference = _el(document_response, CAC, "DocumentReference")
    _el(reference, CBC, "ID", invoice_id)
    _el(reference, CBC, "DocumentTypeCode", invoice_type_code)
    return _bytes(root)


def build_order_response(
    *,
    seller: str,
    buyer: str,
    order_id: str,
    code: str,
    lines: Sequence[LineStatus] = (),
    note: str | None = None,
    issued: datetime | None = None,
    seller_name: str | None = None,
    buyer_name: str | None = None,
    currency: str | None = None,
) -> bytes:
    """An Order Response (BIS 28a) from the seller: accepted (AP), rejected (RE), acknowledged
    (AB) or accepted with changes (CA, which lists the changed or refused lines). ``currency`` is
    the order's DocumentCurrencyCode, which the response repeats."""
    if not currency:
        raise ResponseError("currency", "an order response states the order's currency")
    if not seller_name or not buyer_name:  # BIS 28a: PEPPOL-T76-R001/R002
        raise ResponseError("names", "an order response names the seller and the buyer")
    if code not in OR_CODES:
        raise ResponseError("code", f"an order response code is one of {', '.join(OR_CODES)}")
    if code == "CA" and not lines:
        raise ResponseError("lines", "accepted with changes lists the order lines it changes")
    if code != "CA" and lines:
        raise ResponseError("lines", "order lines are answered only with code CA")
    for line in lines:
        if line.status not in OR_LINE_CODES:
            raise ResponseError("lines", f"line status {line.status!r} is not one of {', '.join(OR_LINE_CODES)}")
        if not line.line_id:
            raise ResponseError("lines", "every line names the order line it answers")
        if not line.item_name:
            raise ResponseError("lines", f"order line {line.line_id}: the item's name is not known")
    root = _root(OR_NS, "OrderResponse")
    _header(root, ORDER_RESPONSE_CUSTOMIZATION, ORDERING_PROFILE, issued or datetime.now(UTC), None)
    _el(root, CBC, "OrderResponseCode", code, listID="UNCL1225")
    if note:
        _el(root, CBC, "Note", note)
    _el(root, CBC, "DocumentCurrencyCode", currency)
    _el(_el(root, CAC, "OrderReference"), CBC, "ID", order_id)
    _party(root, "SellerSupplierParty", seller, seller_name, wrapped=True)
    _party(root, "BuyerCustomerParty", buyer, buyer_name, wrapped=True)
    for number, line in enumerate(lines, 1):
        order_line = _el(root, CAC, "OrderLine")
        item = _el(order_line, CAC, "LineItem")
        _el(item, CBC, "ID", str(number))
        if line.note:
            _el(item, CBC, "Note", line.note)
        _el(item, CBC, "LineStatusCode", line.status, listID="UNCL1229")
        if line.quantity is not None:
            _el(item, CBC, "Quantity", line.quantity, unitCode=line.unit_code or "EA")
        _el(_el(item, CAC, "Item"), CBC, "Name", line.item_name)
        _el(_el(order_line, CAC, "OrderLineReference"), CBC, "LineID", line.line_id)
    return _bytes(root)


# -- reading helpers for the rules ----------------------------------------------------------------


def _t(el: etree._Element, path: str) -> str:
    return " ".join((el.findtext(path) or "").split())


def _c(local: str) -> str:
    return f"{{{CBC}}}{local}"


def _a(local: str) -> str:
    return f"{{{CAC}}}{local}"


# -- rules -------------------------------------------------------------------------------------------


def check_mls(doc: etree._Element) -> list[tuple[str, str]]:
    """The published MLS 1.0 rules (ids ``SCH-MLS-nn``): a list of (rule id, message) broken."""
    broken: list[tuple[str, str]] = []

    def rule(ok: bool, rule_id: str, message: str) -> None:
        if not ok:
            broken.append((rule_id, message))

    if doc.tag != f"{{{AR_NS}}}ApplicationResponse":
        return [("SCH-MLS-00", "the root is not a UBL ApplicationResponse")]
    rule(_t(doc, _c("CustomizationID")) == MLS_CUSTOMIZATION, "SCH-MLS-01", "CustomizationID")
    rule(_t(doc, _c("ProfileID")) == MLS_PROFILE, "SCH-MLS-02", "ProfileID")
    rule(bool(_t(doc, _c("ID"))), "SCH-MLS-03", "ID must not be empty")
    rule(len(_t(doc, _c("IssueDate"))) == 10, "SCH-MLS-04", "IssueDate without time zone")
    issue_time = _t(doc, _c("IssueTime"))
    rule(bool(issue_time), "SCH-MLS-05", "IssueTime must be present")
    rule(issue_time.endswith("Z") or issue_time[-6:-5] in ("+", "-"), "SCH-MLS-06", "IssueTime needs a time zone")
    for role, base in (("SenderParty", 7), ("ReceiverParty", 11)):
        endpoint = doc.find(f"{_a(role)}/{_c('EndpointID')}")
        rule(endpoint is not None, f"SCH-MLS-{base:02d}", f"{role} EndpointID must be present")
        if endpoint is not None:
            scheme = endpoint.get("schemeID") or ""
            rule(bool((endpoint.text or "").strip()), f"SCH-MLS-{base + 1:02d}", f"{role} EndpointID is empty")
            rule(bool(scheme), f"SCH-MLS-{base + 2:02d}", f"{role} EndpointID needs a schemeID")
            rule(len(scheme) == 4 and scheme.isdigit(), f"SCH-MLS-{base + 3:02d}", f"{role} scheme {scheme!r}")
    responses = doc.findall(_a("DocumentResponse"))
    rule(len(responses) == 1, "SCH-MLS-15", "exactly one DocumentResponse")
    if len(responses) != 1:
        return broken
    dr = responses[0]
    code = _t(dr, f"{_a('Response')}/{_c('ResponseCode')}")
    reasons = [
        _t(lr, f"{_a('Response')}/{_a('Status')}/{_c('StatusReasonCode')}") for lr in dr.iter(_a("LineResponse"))
    ]
    failure = any(r in FAILURE_REASONS for r in reasons)
    rule(bool(code), "SCH-MLS-17", "the response code must be present")
    rule(code in MLS_CODES, "SCH-MLS-18", f"response code {code!r}")
    rule(code != "RE" or bool(_t(dr, f"{_a('Response')}/{_c('Description')}")), "SCH-MLS-19", "RE needs a description")
    rule(len(dr.findall(_a("DocumentReference"))) == 1, "SCH-MLS-20", "exactly one DocumentReference")
    rule(bool(_t(dr, f"{_a('DocumentReference')}/{_c('ID')}")), "SCH-MLS-21", "the referenced id is empty")
    rule(code != "RE" or bool(reasons), "SCH-MLS-22", "RE needs at least one issue")
    rule(code != "RE" or failure, "SCH-MLS-23", "RE needs an issue with a failure")
    rule(code == "RE" or not failure, "SCH-MLS-24", "a positive MLS has no failures")
    for line in dr.iter(_a("LineResponse")):
        rule(bool(_t(line, f"{_a('LineReference')}/{_c('LineID')}")), "SCH-MLS-25", "the issue location is empty")
        for response in line.iter(_a("Response")):
            rule(response.find(_c("Description")) is not None, "SCH-MLS-26", "the issue needs a description")
            rule(bool(_t(response, _c("Description"))), "SCH-MLS-27", "the issue description is empty")
            rule(response.find(_a("Status")) is not None, "SCH-MLS-28", "the issue needs a status")
            reason = _t(response, f"{_a('Status')}/{_c('StatusReasonCode')}")
            rule(reason in MLS_REASONS, "SCH-MLS-29", f"status reason {reason!r}")
    return broken


def check_response(doc: etree._Element) -> list[tuple[str, str]]:
    """The code lists and references of an MLR, Invoice Response or Order Response."""
    read = read_document(doc)
    broken: list[tuple[str, str]] = []
    if read.kind == "mls":
        return check_mls(doc)
    if not read.document_id:
        broken.append(("RESPONSE-ID", "the response has no ID"))
    if not read.answers:
        broken.append(("RESPONSE-REF", "the response does not reference a document"))
    if read.customization.startswith(IR_CUSTOMIZATION) and read.code not in IR_CODES:
        broken.append(("IR-CODE", f"response code {read.code!r} is not in UNCL4343OpSubset"))
    if read.customization.startswith(MLR_CUSTOMIZATION) and read.code not in MLR_CODES:
        broken.append(("MLR-CODE", f"response code {read.code!r}"))
    if read.root == "OrderResponse" and read.code not in OR_CODES:
        broken.append(("OR-CODE", f"order response code {read.code!r} is not in UNCL1225"))
    return broken
