"""The signed parts of an outgoing message are written as their exclusive canonical form: lxml's
exc-c14n of what a receiver parses must give back exactly the bytes we hashed, whatever the
header values hold and wherever the element sits."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest
from lxml import etree

import as4
from as4._build import body_xml, messaging_xml
from as4._canon import attr, text
from as4._dsig import signature_xml
from as4._ns import DS, EB, EXC_C14N, SWA_CONTENT_SIGNATURE
from as4._xml import c14n
from gateway.dev.pki import DevPki
from tests.support.as4 import NS, header, sbd, split

AWKWARD = "a&b <c> \"d\" 'e' f\r\ng\th ]]> ø € 𝄞 &amp;"


def _awkward_header() -> as4.UserMessageHeader:
    return replace(
        header(),
        message_id=f"m{AWKWARD}@x",
        conversation_id=AWKWARD,
        service=AWKWARD,
        service_type=AWKWARD,
        action=AWKWARD,
        original_sender=AWKWARD,
        original_sender_type=AWKWARD,
        final_recipient=AWKWARD,
        final_recipient_type=AWKWARD,
    )


def _placed(fragment: str) -> etree._Element:
    """``fragment`` parsed inside a document whose ancestors declare a default namespace,
    other prefixes (one of them rebinding ``eb``) and xml:lang, none of which it may pick up."""
    doc = (
        '<r xmlns="urn:default" xmlns:x="urn:x" xmlns:eb="urn:not-ebms" xml:lang="en">'
        f'<x:w xmlns:ds="{DS}" x:a="1">{fragment}</x:w></r>'
    )
    return etree.fromstring(doc.encode())[0][0]


def test_messaging_is_written_in_its_canonical_form() -> None:
    for written in (
        messaging_xml(_awkward_header(), "id-1", "cid:" + AWKWARD, compressed=True),
        messaging_xml(header(), "id-2", "cid:p@x", compressed=False),
    ):
        assert c14n(_placed(written)) == written.encode()


def test_body_and_signed_info_are_written_in_their_canonical_form(dev_pki: DevPki) -> None:
    assert c14n(_placed(body_xml("id-b"))) == body_xml("id-b").encode()
    signature, digests = signature_xml(
        [("#id-1", EXC_C14N, b"\x01" * 32), (f"cid:{AWKWARD}", SWA_CONTENT_SIGNATURE, b"\x02" * 32)],
        dev_pki.access_points["ap1"].key,
        "X509-1",
        "SIG-1",
    )
    placed = _placed(
        '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">'
        f"{signature}</wsse:Security>"
    )
    signed_info = placed[0][0]
    start = signature.index("<ds:SignedInfo")
    end = signature.index("</ds:SignedInfo>") + len("</ds:SignedInfo>")
    assert c14n(signed_info) == signature[start:end].encode()
    assert set(digests) == {"#id-1", f"cid:{AWKWARD}"}


def test_values_round_trip_through_a_parser() -> None:
    root = _placed(messaging_xml(_awkward_header(), "id-1", "cid:p@x", compressed=True))
    ns = {"eb": EB}
    assert root.findtext("eb:UserMessage/eb:CollaborationInfo/eb:ConversationId", namespaces=ns) == AWKWARD
    assert root.find("eb:UserMessage/eb:CollaborationInfo/eb:Service", ns).get("type") == AWKWARD
    assert etree.fromstring(f'<a b="{attr(AWKWARD)}">{text(AWKWARD)}</a>'.encode()).get("b") == AWKWARD


@pytest.mark.parametrize("bad", ["nul\x00", "bell\x07", "esc\x1b", "\ufffe", "\udc00"])
def test_characters_xml_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        text(bad)
    with pytest.raises(ValueError):
        attr(bad)


def test_awkward_header_values_are_signed_and_verified(dev_pki: DevPki) -> None:
    ap1, ap2 = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    sent = _awkward_header()
    payload = sbd()
    message = as4.build_user_message(sent, payload, signing_key=ap1.key, signing_cert=ap1.cert, receiver_cert=ap2.cert)
    received = as4.parse_user_message(message.body, message.content_type, our_key=ap2.key, our_cert=ap2.cert)
    assert received.header.conversation_id == AWKWARD.strip()
    assert received.header.message_id == sent.message_id
    assert received.payload == payload
    root, _ = split(message)
    messaging = root.find("S12:Header/eb:Messaging", NS)
    uri = "#" + messaging.get(f"{{{NS['wsu']}}}Id")
    assert message.digests[uri] == base64.b64encode(hashlib.sha256(c14n(messaging)).digest()).decode()


def _received(dev_pki: DevPki) -> tuple[as4.BuiltMessage, as4.ReceivedMessage]:
    ap1, ap2 = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    message = as4.build_user_message(
        header(), sbd(), signing_key=ap1.key, signing_cert=ap1.cert, receiver_cert=ap2.cert
    )
    return message, as4.parse_user_message(message.body, message.content_type, our_key=ap2.key, our_cert=ap2.cert)


def test_receipt_messaging_is_canonical_as_written(dev_pki: DevPki) -> None:
    ap2 = dev_pki.access_points["ap2"]
    message, received = _received(dev_pki)
    receipt = as4.build_receipt(received, ap2.key, ap2.cert)
    root = etree.fromstring(receipt)
    messaging = root.find("S12:Header/eb:Messaging", NS)
    start = receipt.index(b"<eb:Messaging")
    end = receipt.index(b"</eb:Messaging>") + len(b"</eb:Messaging>")
    assert c14n(messaging) == receipt[start:end]
    as4.verify_receipt(as4.parse_signal(receipt, as4.SOAP_CONTENT_TYPE), message, ap2.cert)


def test_receipt_reference_redeclaring_an_outer_prefix_is_canonicalized_by_lxml(dev_pki: DevPki) -> None:
    """A reference that declares wsu itself (say it carries a wsu:Id) loses that declaration
    when canonicalized inside the receipt's Messaging, which already declares wsu: the bytes
    written are then not the canonical form, and the digest must come from lxml."""
    ap2 = dev_pki.access_points["ap2"]
    message, received = _received(dev_pki)
    first = received.signed_references[0]
    odd = first.replace(b"<ds:Transforms>", f'<ds:Transforms xmlns:wsu="{NS["wsu"]}" wsu:Id="t-1">'.encode(), 1)
    assert c14n(etree.fromstring(odd)) == odd  # canonical on its own, not inside the receipt
    receipt = as4.build_receipt(
        replace(received, signed_references=[odd, *received.signed_references[1:]]), ap2.key, ap2.cert
    )
    parsed = as4.parse_signal(receipt, as4.SOAP_CONTENT_TYPE)
    as4.verify_receipt(parsed, message, ap2.cert)


def test_error_signal_messaging_is_canonical_as_written(dev_pki: DevPki) -> None:
    ap2 = dev_pki.access_points["ap2"]
    error = as4.OtherError(AWKWARD, detail=AWKWARD)
    raw = as4.build_error_signal([error, as4.NotServiced("no")], "ref&<1>", key=ap2.key, cert=ap2.cert)
    messaging = etree.fromstring(raw).find("S12:Header/eb:Messaging", NS)
    start, end = raw.index(b"<eb:Messaging"), raw.index(b"</eb:Messaging>") + len(b"</eb:Messaging>")
    assert c14n(messaging) == raw[start:end]
    with pytest.raises(as4.EbmsErrorReceived) as caught:
        as4.parse_signal(raw, as4.SOAP_CONTENT_TYPE)
    assert caught.value.signed
    assert [e.code for e in caught.value.errors] == ["EBMS:0004", "EBMS:0004"]
    first = caught.value.errors[0]
    assert (first.description, first.detail, first.ref_to_message_id) == (AWKWARD.strip(), AWKWARD.strip(), "ref&<1>")
