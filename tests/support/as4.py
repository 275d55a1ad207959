"""Shared inputs for the AS4 tests: a real BIS 3 invoice in an SBDH, headers, tampering tools."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from lxml import etree

import as4
from as4._mime import parse_content_type, parse_multipart
from gateway.dev.pki import Issued
from gateway.documents.envelope import build_sbd
from tests.support.paths import DATA

INVOICE = (DATA / "invoice-bis3.xml").read_bytes()
DOCTYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017"
    "#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
SENDER = "0007:2120000787"
RECEIVER = "0192:991825827"

NS = {
    "S12": "http://www.w3.org/2003/05/soap-envelope",
    "eb": "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
}


def sbd(document: bytes = INVOICE) -> bytes:
    return build_sbd(
        document,
        sender=SENDER,
        receiver=RECEIVER,
        document_type=DOCTYPE,
        process=PROCESS,
        country_c1="SE",
    )


def header(from_party: str = "POP000001", to_party: str = "POP000002") -> as4.UserMessageHeader:
    return as4.UserMessageHeader(
        message_id=as4.new_message_id("sender.test"),
        conversation_id=str(uuid.uuid4()),
        timestamp=datetime.now(UTC),
        from_party=from_party,
        to_party=to_party,
        service=PROCESS,
        action="busdox-docid-qns::" + DOCTYPE,
        original_sender=SENDER,
        final_recipient=RECEIVER,
    )


def build(sender: Issued, receiver: Issued, payload: bytes | None = None, **kw: object) -> as4.BuiltMessage:
    h = kw.pop("header", None) or header()
    return as4.build_user_message(
        h,  # type: ignore[arg-type]
        payload if payload is not None else sbd(),
        signing_key=sender.key,
        signing_cert=sender.cert,
        receiver_cert=receiver.cert,
        **kw,  # type: ignore[arg-type]
    )


def split(message: as4.BuiltMessage) -> tuple[etree._Element, list[tuple[str, str, bytes]]]:
    """The SOAP envelope (parsed) and the attachments of a built message."""
    _, params = parse_content_type(message.content_type)
    parts = parse_multipart(message.body, params["boundary"])
    attachments = [(p.content_id or "", p.headers["content-type"], bytes(p.body)) for p in parts[1:]]
    return etree.fromstring(bytes(parts[0].body)), attachments


def tamper(
    message: as4.BuiltMessage,
    soap: Callable[[etree._Element], object] | None = None,
    attachment: Callable[[bytes], bytes] | None = None,
) -> as4.BuiltMessage:
    """A copy of ``message`` with its SOAP envelope and/or attachment changed after signing."""
    from as4._mime import build_multipart

    root, attachments = split(message)
    if soap:
        soap(root)
    if attachment:
        attachments = [(cid, ct, attachment(data)) for cid, ct, data in attachments]
    body, content_type = build_multipart(etree.tostring(root), attachments)
    return replace(message, body=body, content_type=content_type)
