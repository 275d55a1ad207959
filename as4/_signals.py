"""Receipt and Error signals: build them (signed) and read them on the sending side."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from as4._build import envelope_skeleton, format_timestamp, new_message_id
from as4._dsig import add_bst, sign, verify_signature
from as4._errors import As4Error, EbmsErrorReceived, InvalidReceipt
from as4._ids import uid as _uid
from as4._model import BuiltMessage, ErrorSignal, Receipt, ReceivedMessage
from as4._ns import DS, EB, EBBP, S12, WSU, XML, q
from as4._parse import parse_timestamp, read_soap
from as4._stream import StreamedFrame
from as4._xml import parse_xml

__all__ = ["build_error_signal", "build_receipt", "parse_signal", "verify_receipt"]

SOAP_CONTENT_TYPE = "application/soap+xml; charset=UTF-8"


def _signal_skeleton(
    ref_to_message_id: str | None, message_id: str | None, timestamp: datetime | None
) -> tuple[etree._Element, etree._Element, etree._Element, etree._Element, etree._Element]:
    envelope, soap_header, security, body = envelope_skeleton()
    messaging = etree.SubElement(soap_header, q(EB, "Messaging"), nsmap={"eb": EB, "wsu": WSU})
    messaging.set(q(S12, "mustUnderstand"), "true")
    messaging.set(q(WSU, "Id"), f"id-{_uid()}")
    signal = etree.SubElement(messaging, q(EB, "SignalMessage"))
    info = etree.SubElement(signal, q(EB, "MessageInfo"))
    etree.SubElement(info, q(EB, "Timestamp")).text = format_timestamp(timestamp or datetime.now(UTC))
    etree.SubElement(info, q(EB, "MessageId")).text = message_id or new_message_id()
    if ref_to_message_id:
        etree.SubElement(info, q(EB, "RefToMessageId")).text = ref_to_message_id
    return envelope, security, messaging, signal, body


def _sign_and_serialize(
    envelope: etree._Element,
    security: etree._Element,
    messaging: etree._Element,
    body: etree._Element,
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
) -> bytes:
    bst_id = f"X509-{_uid()}"
    add_bst(security, cert, bst_id)
    sign(security, [messaging, body], [], key, bst_id, f"SIG-{_uid()}")
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def build_receipt(
    received: ReceivedMessage,
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    *,
    message_id: str | None = None,
    timestamp: datetime | None = None,
) -> bytes:
    """A signed non-repudiation Receipt for ``received``: one MessagePartNRInformation per
    ds:Reference of the signature we verified. Send it with ``SOAP_CONTENT_TYPE``."""
    envelope, security, messaging, signal, body = _signal_skeleton(received.header.message_id, message_id, timestamp)
    receipt = etree.SubElement(signal, q(EB, "Receipt"))
    nri = etree.SubElement(receipt, q(EBBP, "NonRepudiationInformation"), nsmap={"ebbp": EBBP})
    for raw in received.signed_references:
        part = etree.SubElement(nri, q(EBBP, "MessagePartNRInformation"))
        part.append(parse_xml(raw, "signed reference"))
    return _sign_and_serialize(envelope, security, messaging, body, key, cert)


def build_error_signal(
    errors: list[As4Error],
    ref_to_message_id: str | None,
    *,
    key: rsa.RSAPrivateKey | None = None,
    cert: x509.Certificate | None = None,
    message_id: str | None = None,
) -> bytes:
    """An ebMS Error signal; signed when a key and certificate are given."""
    envelope, security, messaging, signal, body = _signal_skeleton(ref_to_message_id, message_id, None)
    for error in errors:
        attrs = {
            "errorCode": error.code,
            "severity": error.severity,
            "category": error.category,
            "origin": error.origin,
            "shortDescription": error.short_description,
        }
        if ref_to_message_id:
            attrs["refToMessageInError"] = ref_to_message_id
        el = etree.SubElement(signal, q(EB, "Error"), attrs)
        description = etree.SubElement(el, q(EB, "Description"))
        description.set(q(XML, "lang"), "en")
        description.text = error.reason[:1000]
        if error.detail:
            etree.SubElement(el, q(EB, "ErrorDetail")).text = error.detail
    if key is not None and cert is not None:
        return _sign_and_serialize(envelope, security, messaging, body, key, cert)
    security.getparent().remove(security)  # type: ignore[union-attr]
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def parse_signal(body: bytes, content_type: str) -> Receipt:
    """Read the answer to a UserMessage. A verified Receipt is returned; Error signals raise
    :class:`EbmsErrorReceived`; anything else raises :class:`InvalidReceipt`."""
    try:
        soap = read_soap(body, content_type)
    except As4Error as exc:
        raise InvalidReceipt(f"the answer is not an ebMS signal: {exc.reason}") from None
    signals = soap.messaging.findall(q(EB, "SignalMessage"))
    if len(signals) != 1:
        raise InvalidReceipt("the answer holds no single eb:SignalMessage")
    signal = signals[0]
    error_elements = signal.findall(q(EB, "Error"))
    if error_elements:
        errors = [
            ErrorSignal(
                code=e.get("errorCode", ""),
                severity=e.get("severity", ""),
                short_description=e.get("shortDescription", ""),
                description=(e.findtext(q(EB, "Description")) or "").strip(),
                detail=(e.findtext(q(EB, "ErrorDetail")) or "").strip(),
                category=e.get("category", ""),
                origin=e.get("origin", ""),
                ref_to_message_id=e.get("refToMessageInError"),
            )
            for e in error_elements
        ]
        raise EbmsErrorReceived(errors, signed=soap.root.find(f".//{q(DS, 'Signature')}") is not None)
    receipt_el = signal.find(q(EB, "Receipt"))
    if receipt_el is None:
        raise InvalidReceipt("the signal is neither a Receipt nor an Error")
    if soap.security is None:
        raise InvalidReceipt("the receipt is not signed")
    try:
        verified = verify_signature(soap.root, soap.security, {"messaging": soap.messaging, "body": soap.body}, {})
    except As4Error as exc:
        raise InvalidReceipt(f"receipt signature: {exc.reason}") from None
    info = signal.find(q(EB, "MessageInfo"))
    if info is None:
        raise InvalidReceipt("the receipt has no eb:MessageInfo")
    ref_to = (info.findtext(q(EB, "RefToMessageId")) or "").strip()
    stamp = info.findtext(q(EB, "Timestamp"))
    digests: dict[str, str] = {}
    for ref in receipt_el.iter(q(DS, "Reference")):
        value = "".join((ref.findtext(q(DS, "DigestValue")) or "").split())
        digests[ref.get("URI") or ""] = value
    try:
        timestamp = parse_timestamp(stamp) if stamp else None
    except As4Error:
        timestamp = None
    return Receipt(
        message_id=(info.findtext(q(EB, "MessageId")) or "").strip(),
        ref_to_message_id=ref_to,
        timestamp=timestamp,
        signer_certificate=verified.certificate,
        digests=digests,
        raw=body,
    )


def verify_receipt(
    receipt: Receipt, sent: BuiltMessage | StreamedFrame, receiver_cert: x509.Certificate | None = None
) -> None:
    """Check a receipt answers ``sent``: same MessageId, the very digests we signed, and (when
    given) signed by the receiver's certificate. Raises :class:`InvalidReceipt`."""
    if receipt.ref_to_message_id != sent.header.message_id:
        raise InvalidReceipt(f"receipt refers to {receipt.ref_to_message_id!r}, not {sent.header.message_id!r}")
    if not receipt.digests:
        raise InvalidReceipt("receipt carries no non-repudiation information")
    if receipt.digests != sent.digests:
        raise InvalidReceipt("receipt digests differ from the ones we signed")
    if receiver_cert is not None and receipt.signer_certificate != receiver_cert:
        raise InvalidReceipt("receipt is not signed by the receiving access point's certificate")
