"""The AS4 message layer: what a built message contains and how parsing, receipts and errors behave."""

from __future__ import annotations

import asyncio

import pytest

import as4
from as4._mime import parse_content_type
from gateway.dev.pki import DevPki
from tests.support.as4 import NS, PROCESS, RECEIVER, SENDER, build, header, sbd, split


@pytest.fixture(scope="module")
def ap1(dev_pki: DevPki):  # type: ignore[no-untyped-def]
    return dev_pki.access_points["ap1"]


@pytest.fixture(scope="module")
def ap2(dev_pki: DevPki):  # type: ignore[no-untyped-def]
    return dev_pki.access_points["ap2"]


def test_content_type_is_multipart_related_soap12_with_start(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    message = build(ap1, ap2)
    kind, params = parse_content_type(message.content_type)
    assert kind == "multipart/related"
    assert params["type"] == "application/soap+xml"
    assert params["start"].startswith("<") and params["boundary"]


def test_user_message_carries_every_peppol_header_value(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    root, attachments = split(build(ap1, ap2))
    um = root.find("S12:Header/eb:Messaging/eb:UserMessage", NS)
    assert um is not None
    party_type = "urn:fdc:peppol.eu:2017:identifiers:ap"
    assert um.find("eb:PartyInfo/eb:From/eb:PartyId", NS).get("type") == party_type
    assert um.findtext("eb:PartyInfo/eb:From/eb:PartyId", namespaces=NS) == "POP000001"
    assert um.findtext("eb:PartyInfo/eb:To/eb:Role", namespaces=NS).endswith("/responder")
    agreement = um.find("eb:CollaborationInfo/eb:AgreementRef", NS)
    assert agreement.text == "urn:fdc:peppol.eu:2017:agreements:tia:ap_provider"
    assert agreement.attrib == {}
    service = um.find("eb:CollaborationInfo/eb:Service", NS)
    assert (service.text, service.get("type")) == (PROCESS, "cenbii-procid-ubl")
    assert um.findtext("eb:CollaborationInfo/eb:Action", namespaces=NS).startswith("busdox-docid-qns::")
    props = {p.get("name"): (p.text, p.get("type")) for p in um.iterfind("eb:MessageProperties/eb:Property", NS)}
    assert props == {
        "originalSender": (SENDER, "iso6523-actorid-upis"),
        "finalRecipient": (RECEIVER, "iso6523-actorid-upis"),
    }
    part = um.find("eb:PayloadInfo/eb:PartInfo", NS)
    assert part.get("href") == "cid:" + attachments[0][0]
    part_props = {p.get("name"): p.text for p in part.iterfind("eb:PartProperties/eb:Property", NS)}
    assert part_props == {"MimeType": "application/xml", "CompressionType": "application/gzip"}
    assert len(root.find("S12:Body", NS)) == 0


def test_security_header_orders_tokens_key_data_and_signature(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    root, _ = split(build(ap1, ap2))
    security = root.find("S12:Header/wsse:Security", NS)
    names = [child.tag.split("}")[1] for child in security]
    assert names == [
        "BinarySecurityToken",
        "EncryptedKey",
        "EncryptedData",
        "BinarySecurityToken",
        "Signature",
    ]
    algorithms = {el.get("Algorithm") for el in security.iter() if el.get("Algorithm")}
    assert "http://www.w3.org/2009/xmlenc11#aes128-gcm" in algorithms
    assert "http://www.w3.org/2009/xmlenc11#rsa-oaep" in algorithms
    assert "http://www.w3.org/2009/xmlenc11#mgf1sha256" in algorithms
    assert "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" in algorithms


def test_attachment_on_the_wire_is_encrypted_octets(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    payload = sbd()
    _, attachments = split(build(ap1, ap2, payload))
    _cid, content_type, data = attachments[0]
    assert content_type == "application/octet-stream"
    assert b"StandardBusinessDocument" not in data and not data.startswith(b"\x1f\x8b")


def test_parse_returns_the_payload_and_header(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    payload = sbd()
    message = build(ap1, ap2, payload)
    received = as4.parse_user_message(message.body, message.content_type, our_key=ap2.key, our_cert=ap2.cert)
    assert received.payload == payload
    assert received.header == message.header
    assert received.signer_certificate == ap1.cert
    assert {r.target for r in received.references} == {"messaging", "body", "attachment"}


def test_payload_can_stream_to_a_sink(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    payload = sbd()
    message = build(ap1, ap2, payload)
    chunks: list[bytes] = []
    received = as4.parse_user_message(
        message.body,
        message.content_type,
        our_key=ap2.key,
        our_cert=ap2.cert,
        payload_sink=chunks.append,
    )
    assert received.payload is None and b"".join(chunks) == payload
    assert received.payload_size == len(payload)


def test_uncompressed_payload_is_accepted(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    payload = sbd()
    message = build(ap1, ap2, payload, compress=False)
    received = as4.parse_user_message(message.body, message.content_type, our_key=ap2.key, our_cert=ap2.cert)
    assert received.payload == payload and not received.compressed


def test_receipt_answers_the_message_with_its_digests(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    message = build(ap1, ap2)
    received = as4.parse_user_message(message.body, message.content_type, our_key=ap2.key, our_cert=ap2.cert)
    receipt = as4.parse_signal(as4.build_receipt(received, ap2.key, ap2.cert), as4.SOAP_CONTENT_TYPE)
    assert receipt.ref_to_message_id == message.header.message_id
    assert receipt.digests == message.digests
    as4.verify_receipt(receipt, message, ap2.cert)


def test_receipt_for_another_message_is_rejected(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    first, second = build(ap1, ap2), build(ap1, ap2)
    received = as4.parse_user_message(first.body, first.content_type, our_key=ap2.key, our_cert=ap2.cert)
    receipt = as4.parse_signal(as4.build_receipt(received, ap2.key, ap2.cert), as4.SOAP_CONTENT_TYPE)
    with pytest.raises(as4.InvalidReceipt, match="refers to"):
        as4.verify_receipt(receipt, second)


def test_receipt_signed_by_someone_else_is_rejected(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    message = build(ap1, ap2)
    received = as4.parse_user_message(message.body, message.content_type, our_key=ap2.key, our_cert=ap2.cert)
    receipt = as4.parse_signal(as4.build_receipt(received, ap1.key, ap1.cert), as4.SOAP_CONTENT_TYPE)
    with pytest.raises(as4.InvalidReceipt, match="not signed by the receiving"):
        as4.verify_receipt(receipt, message, ap2.cert)


def test_tampered_receipt_fails_its_signature(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    message = build(ap1, ap2)
    received = as4.parse_user_message(message.body, message.content_type, our_key=ap2.key, our_cert=ap2.cert)
    raw = as4.build_receipt(received, ap2.key, ap2.cert).replace(message.header.message_id.encode(), b"someone-else@x")
    with pytest.raises(as4.InvalidReceipt, match="signature"):
        as4.parse_signal(raw, as4.SOAP_CONTENT_TYPE)


def test_not_serviced_error_signal_carries_the_peppol_detail(ap2) -> None:  # type: ignore[no-untyped-def]
    raw = as4.build_error_signal(
        [as4.NotServiced("receiver 0192:991825827 is not served here")],
        "m-1@x",
        key=ap2.key,
        cert=ap2.cert,
    )
    with pytest.raises(as4.EbmsErrorReceived) as info:
        as4.parse_signal(raw, as4.SOAP_CONTENT_TYPE)
    error = info.value.errors[0]
    assert (error.code, error.severity, error.detail) == (
        "EBMS:0004",
        "failure",
        "PEPPOL:NOT_SERVICED",
    )
    assert error.ref_to_message_id == "m-1@x" and info.value.signed


def test_error_codes_map_back_to_exception_types() -> None:
    assert as4.error_for_code("EBMS:0101") is as4.FailedAuthentication
    assert as4.error_for_code("EBMS:0303") is as4.DecompressionFailure
    assert as4.error_for_code("EBMS:9999") is as4.OtherError


def test_trust_check_accepts_the_dev_ap_and_rejects_others(dev_pki: DevPki, ap1) -> None:  # type: ignore[no-untyped-def]
    assert as4.check_ap_certificate(ap1.cert, [dev_pki.ap_ca.cert]) == dev_pki.ap_ca.cert
    with pytest.raises(as4.FailedAuthentication, match="not issued by a trusted AP CA"):
        as4.check_ap_certificate(dev_pki.smp.cert, [dev_pki.ap_ca.cert])


def test_header_helper_builds_unique_message_ids() -> None:
    assert header().message_id != header().message_id


_ = asyncio
