"""Receipt and Error signals: build them (signed) and read them on the sending side."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from as4._build import (
    ENVELOPE_OPEN,
    MESSAGING_OPEN,
    XML_DECLARATION,
    body_xml,
    format_timestamp,
    new_message_id,
)
from as4._canon import attr, text
from as4._dsig import bst_xml, signature_xml, verify_signature
from as4._errors import As4Error, EbmsErrorReceived, InvalidReceipt
from as4._ids import uid, uids
from as4._model import BuiltMessage, ErrorSignal, Receipt, ReceivedMessage
from as4._ns import DS, EB, EBBP, EXC_C14N, S12, WSU, q
from as4._parse import parse_timestamp, read_soap
from as4._stream import StreamedFrame
from as4._xml import c14n, parse_xml

__all__ = ["build_error_signal", "build_receipt", "parse_signal", "verify_receipt"]

SOAP_CONTENT_TYPE = "application/soap+xml; charset=UTF-8"


_RENDERED_ABOVE_NRI = tuple(
    f'xmlns:{prefix}="{uri}"'.encode() for prefix, uri in (("S12", S12), ("eb", EB), ("wsu", WSU), ("ebbp", EBBP))
)


def _signal_messaging(
    messaging_id: str,
    ref_to_message_id: str | None,
    message_id: str | None,
    content: list[bytes],
    timestamp: datetime | None,
) -> bytes:
    """A signal's ``eb:Messaging`` in exclusive canonical form around ``content`` (the Receipt
    or the Errors), when ``content`` is canonical too."""
    stamp = format_timestamp(timestamp or datetime.now(UTC))
    ref_to = f"<eb:RefToMessageId>{text(ref_to_message_id)}</eb:RefToMessageId>" if ref_to_message_id else ""
    head = (
        f'{MESSAGING_OPEN}{attr(messaging_id)}" S12:mustUnderstand="true"><eb:SignalMessage><eb:MessageInfo>'
        f"<eb:Timestamp>{text(stamp)}</eb:Timestamp><eb:MessageId>{text(message_id or new_message_id())}"
        f"</eb:MessageId>{ref_to}</eb:MessageInfo>"
    )
    return b"".join((head.encode(), *content, b"</eb:SignalMessage></eb:Messaging>"))


def _signal_envelope(
    messaging: bytes,
    messaging_id: str,
    canonical: bool,
    key: rsa.RSAPrivateKey | None,
    cert: x509.Certificate | None,
) -> bytes:
    """The SOAP envelope around a signal's Messaging, signed over Messaging and Body when a
    key and certificate are given. ``canonical``: ``messaging`` is its own exclusive canonical
    form, so its digest is theirs; otherwise lxml canonicalizes it once."""
    body_id, bst_id, sig_id = uids(3)
    body = body_xml(f"id-{body_id}").encode()
    if key is None or cert is None:
        head = f'{XML_DECLARATION}<S12:Envelope xmlns:S12="{S12}"><S12:Header>'
    else:
        canonical_messaging = messaging if canonical else c14n(parse_xml(messaging, "signal header"))
        signature, _ = signature_xml(
            [
                (f"#{messaging_id}", EXC_C14N, hashlib.sha256(canonical_messaging).digest()),
                (f"#id-{body_id}", EXC_C14N, hashlib.sha256(body).digest()),
            ],
            key,
            f"X509-{bst_id}",
            f"SIG-{sig_id}",
        )
        head = f"{ENVELOPE_OPEN}{bst_xml(cert, f'X509-{bst_id}')}{signature}</wsse:Security>"
    return b"".join((head.encode(), messaging, b"</S12:Header>", body, b"</S12:Envelope>"))


def build_receipt(
    received: ReceivedMessage,
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    *,
    message_id: str | None = None,
    timestamp: datetime | None = None,
) -> bytes:
    """A signed non-repudiation Receipt for ``received``: one MessagePartNRInformation per
    ds:Reference of the signature we verified. Send it with ``SOAP_CONTENT_TYPE``.

    The references are the exclusive canonical forms parsing kept, so the whole Messaging is
    canonical as written unless one of them redeclares a prefix its new ancestors already
    declare (then lxml canonicalizes it once)."""
    references = received.signed_references
    nri = [
        f'<eb:Receipt><ebbp:NonRepudiationInformation xmlns:ebbp="{EBBP}">'.encode(),
        *(b"<ebbp:MessagePartNRInformation>%s</ebbp:MessagePartNRInformation>" % r for r in references),
        b"</ebbp:NonRepudiationInformation></eb:Receipt>",
    ]
    messaging_id = f"id-{uid()}"
    messaging = _signal_messaging(messaging_id, received.header.message_id, message_id, nri, timestamp)
    canonical = not any(declared in r for r in references for declared in _RENDERED_ABOVE_NRI)
    return _signal_envelope(messaging, messaging_id, canonical, key, cert)


def build_error_signal(
    errors: list[As4Error],
    ref_to_message_id: str | None,
    *,
    key: rsa.RSAPrivateKey | None = None,
    cert: x509.Certificate | None = None,
    message_id: str | None = None,
) -> bytes:
    """An ebMS Error signal; signed when a key and certificate are given."""
    in_error = f' refToMessageInError="{attr(ref_to_message_id)}"' if ref_to_message_id else ""
    parts: list[str] = []
    for error in errors:
        # attributes in canonical order: all unqualified, so by name
        parts.append(
            f'<eb:Error category="{attr(error.category)}" errorCode="{attr(error.code)}" '
            f'origin="{attr(error.origin)}"{in_error} severity="{attr(error.severity)}" '
            f'shortDescription="{attr(error.short_description)}">'
            f'<eb:Description xml:lang="en">{text(error.reason[:1000])}</eb:Description>'
        )
        if error.detail:
            parts.append(f"<eb:ErrorDetail>{text(error.detail)}</eb:ErrorDetail>")
        parts.append("</eb:Error>")
    messaging_id = f"id-{uid()}"
    messaging = _signal_messaging(messaging_id, ref_to_message_id, message_id, ["".join(parts).encode()], None)
    return _signal_envelope(messaging, messaging_id, True, key, cert)


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
        references=verified.references,
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
