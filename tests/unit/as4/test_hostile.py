"""Hostile and broken messages: each ends in the right typed ebMS error, never another exception.

Each case starts from a valid message built by us and changes one thing, the way an attacker or a
broken peer would.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import gzip

import pytest
from lxml import etree

import as4
from as4._crypto import gcm_encrypt, oaep_unwrap
from gateway.dev.pki import DevPki, Issued, issue, name
from tests.support.as4 import NS, build, header, sbd, split, tamper

EB = NS["eb"]


@pytest.fixture(scope="module")
def ap1(dev_pki: DevPki) -> Issued:
    return dev_pki.access_points["ap1"]


@pytest.fixture(scope="module")
def ap2(dev_pki: DevPki) -> Issued:
    return dev_pki.access_points["ap2"]


@pytest.fixture(scope="module")
def valid(ap1: Issued, ap2: Issued) -> as4.BuiltMessage:
    return build(ap1, ap2)


def parse(message: as4.BuiltMessage, ap2: Issued, **kw: object) -> as4.ReceivedMessage:
    return as4.parse_user_message(
        message.body,
        message.content_type,
        our_key=ap2.key,
        our_cert=ap2.cert,
        **kw,  # type: ignore[arg-type]
    )


def _messaging(root: etree._Element) -> etree._Element:
    return root.find("S12:Header/eb:Messaging", NS)


# --- signature wrapping and ids ----------------------------------------------------------------


def test_wrapped_messaging_header_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    """The signed Messaging is hidden inside wsse:Security and a forged one takes its place."""

    def wrap(root: etree._Element) -> None:
        original = _messaging(root)
        forged = copy.deepcopy(original)
        forged.set(f"{{{NS['wsu']}}}Id", "forged")
        forged.find(".//eb:PartyInfo/eb:To/eb:PartyId", NS).text = "POP000002"
        forged.find(".//eb:Property[@name='finalRecipient']", NS).text = "0192:974760673"
        root.find("S12:Header/wsse:Security", NS).append(original)
        root.find("S12:Header", NS).append(forged)

    with pytest.raises(as4.FailedAuthentication, match="does not point at the Body or Messaging"):
        parse(tamper(valid, soap=wrap), ap2)


def test_duplicated_id_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    """A second element carries the signed Messaging's wsu:Id."""

    def duplicate(root: etree._Element) -> None:
        messaging_id = _messaging(root).get(f"{{{NS['wsu']}}}Id")
        decoy = etree.SubElement(root.find("S12:Header/wsse:Security", NS), f"{{{EB}}}Messaging")
        decoy.set(f"{{{NS['wsu']}}}Id", messaging_id)

    with pytest.raises(as4.FailedAuthentication, match="matches 2 elements"):
        parse(tamper(valid, soap=duplicate), ap2)


def test_moved_id_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    """The Body's id moves to another element so the reference no longer reaches the Body."""

    def move(root: etree._Element) -> None:
        body = root.find("S12:Body", NS)
        body_id = body.attrib.pop(f"{{{NS['wsu']}}}Id")
        etree.SubElement(root.find("S12:Header", NS), "Decoy").set(f"{{{NS['wsu']}}}Id", body_id)

    with pytest.raises(as4.FailedAuthentication, match="does not point at the Body"):
        parse(tamper(valid, soap=move), ap2)


def test_second_signature_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def add(root: etree._Element) -> None:
        sig = root.find(".//ds:Signature", NS)
        root.find("S12:Header", NS).append(copy.deepcopy(sig))

    with pytest.raises(as4.FailedAuthentication, match="exactly one ds:Signature"):
        parse(tamper(valid, soap=add), ap2)


def test_unsigned_attachment_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def drop(root: etree._Element) -> None:
        for ref in root.iterfind(".//ds:SignedInfo/ds:Reference", NS):
            if ref.get("URI", "").startswith("cid:"):
                ref.getparent().remove(ref)

    with pytest.raises(as4.FailedAuthentication, match="not signed: attachment"):
        parse(tamper(valid, soap=drop), ap2)


def test_unsigned_message_is_a_policy_violation(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def strip(root: etree._Element) -> None:
        sig = root.find(".//ds:Signature", NS)
        sig.getparent().remove(sig)

    with pytest.raises(as4.PolicyNoncompliance, match="not signed"):
        parse(tamper(valid, soap=strip), ap2)


def test_unknown_transform_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def xpath(root: etree._Element) -> None:
        transform = root.find(".//ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform", NS)
        transform.set("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")

    with pytest.raises(as4.PolicyNoncompliance, match="transforms"):
        parse(tamper(valid, soap=xpath), ap2)


def test_key_given_inline_instead_of_by_token_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def inline(root: etree._Element) -> None:
        key_info = root.find(".//ds:Signature/ds:KeyInfo", NS)
        for child in list(key_info):
            key_info.remove(child)
        data = etree.SubElement(key_info, f"{{{NS['ds']}}}X509Data")
        token = root.find(".//wsse:BinarySecurityToken", NS)
        etree.SubElement(data, f"{{{NS['ds']}}}X509Certificate").text = token.text

    with pytest.raises(as4.PolicyNoncompliance, match="BinarySecurityToken"):
        parse(tamper(valid, soap=inline), ap2)


# --- altered content -----------------------------------------------------------------------------


def test_altered_header_fails_the_digest(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def change(root: etree._Element) -> None:
        _messaging(root).find(".//eb:Property[@name='finalRecipient']", NS).text = "0192:974760673"

    with pytest.raises(as4.FailedAuthentication, match="digest does not match"):
        parse(tamper(valid, soap=change), ap2)


def test_altered_payload_fails_the_digest(valid: as4.BuiltMessage, ap2: Issued) -> None:
    """The attacker knows the content key (a compromised receiver) and re-encrypts other bytes."""
    root, _ = split(valid)
    wrapped = base64.b64decode(root.findtext(".//xenc:EncryptedKey/xenc:CipherData/xenc:CipherValue", namespaces=NS))
    key = oaep_unwrap(ap2.key, wrapped)
    forged = gcm_encrypt(key, gzip.compress(sbd().replace(b"1250.00", b"9250.00")))
    with pytest.raises(as4.FailedAuthentication, match="digest does not match"):
        parse(tamper(valid, attachment=lambda _: forged), ap2)


def test_flipped_ciphertext_fails_decryption(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def flip(data: bytes) -> bytes:
        return data[:40] + bytes([data[40] ^ 1]) + data[41:]

    with pytest.raises(as4.FailedDecryption, match="authentication"):
        parse(tamper(valid, attachment=flip), ap2)


def test_message_for_another_access_point_is_not_decrypted(valid: as4.BuiltMessage, ap1: Issued) -> None:
    with pytest.raises(as4.FailedDecryption, match="another certificate"):
        as4.parse_user_message(valid.body, valid.content_type, our_key=ap1.key, our_cert=ap1.cert)


def test_sender_party_must_be_the_signer(ap1: Issued, ap2: Issued) -> None:
    message = build(ap1, ap2, header=header(from_party="POP000777"))
    with pytest.raises(as4.FailedAuthentication, match="is not the signer"):
        parse(message, ap2)


# --- certificates handed back for the trust decision ----------------------------------------------


def test_self_signed_signer_is_handed_back_and_then_rejected(dev_pki: DevPki, ap2: Issued) -> None:
    rogue = issue(name("POP000666", "Rogue AP", "XX"), None, ca=False)
    message = build(rogue, ap2, header=header(from_party="POP000666"))
    received = parse(message, ap2)
    assert received.signer_certificate == rogue.cert
    with pytest.raises(as4.FailedAuthentication, match="not issued by a trusted AP CA"):
        as4.check_ap_certificate(received.signer_certificate, [dev_pki.ap_ca.cert])


def test_expired_signer_is_handed_back_and_then_rejected(dev_pki: DevPki, ap2: Issued) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    expired = issue(
        name("POP000555", "Expired AP", "NO"), dev_pki.ap_ca, ca=False,
        not_before=past, not_after=past + dt.timedelta(days=365),
    )  # fmt: skip
    received = parse(build(expired, ap2, header=header(from_party="POP000555")), ap2)
    with pytest.raises(as4.FailedAuthentication, match="expired"):
        as4.check_ap_certificate(received.signer_certificate, [dev_pki.ap_ca.cert])


# --- hostile XML and MIME ---------------------------------------------------------------------------


def _raw_soap(valid: as4.BuiltMessage, soap: bytes) -> as4.BuiltMessage:
    from dataclasses import replace

    from as4._mime import build_multipart

    _, attachments = split(valid)
    body, content_type = build_multipart(soap, attachments)
    return replace(valid, body=body, content_type=content_type)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE S12:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<S12:Envelope xmlns:S12="http://www.w3.org/2003/05/soap-envelope"><S12:Header/>
<S12:Body>&xxe;</S12:Body></S12:Envelope>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<S12:Envelope xmlns:S12="http://www.w3.org/2003/05/soap-envelope"><S12:Body>&lol4;</S12:Body></S12:Envelope>"""


def test_external_entity_is_refused(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.InvalidHeader, match="document type declarations"):
        parse(_raw_soap(valid, XXE), ap2)


def test_billion_laughs_is_refused(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.InvalidHeader, match="document type declarations"):
        parse(_raw_soap(valid, BILLION_LAUGHS), ap2)


def test_malformed_xml_is_an_invalid_header(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.InvalidHeader, match="not well-formed"):
        parse(
            _raw_soap(valid, b"<S12:Envelope xmlns:S12='http://www.w3.org/2003/05/soap-envelope'>"),
            ap2,
        )


def test_soap11_envelope_is_not_recognized(valid: as4.BuiltMessage, ap2: Issued) -> None:
    soap = b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Header/><s:Body/></s:Envelope>"
    with pytest.raises(as4.ValueNotRecognized, match=r"SOAP 1\.1"):
        parse(_raw_soap(valid, soap), ap2)


def test_gzip_bomb_stops_at_the_size_cap(ap1: Issued, ap2: Issued) -> None:
    bomb = sbd() + b" " * (8 * 1024 * 1024)  # compresses to a few kilobytes
    message = build(ap1, ap2, bomb)
    assert len(message.body) < 64 * 1024
    with pytest.raises(as4.DecompressionFailure, match="exceeds"):
        parse(message, ap2, max_payload_bytes=1024 * 1024)


def test_truncated_mime_is_a_mime_inconsistency(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.MimeInconsistency, match="truncated"):
        as4.parse_user_message(
            valid.body[: len(valid.body) // 2],
            valid.content_type,
            our_key=ap2.key,
            our_cert=ap2.cert,
        )


def test_missing_boundary_is_a_mime_inconsistency(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.MimeInconsistency, match="boundary"):
        as4.parse_user_message(valid.body, "multipart/related", our_key=ap2.key, our_cert=ap2.cert)


def test_wrong_content_type_is_a_mime_inconsistency(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.MimeInconsistency, match="not an AS4 message"):
        as4.parse_user_message(valid.body, "application/json", our_key=ap2.key, our_cert=ap2.cert)


def test_empty_body_is_a_mime_inconsistency(ap2: Issued) -> None:
    with pytest.raises(as4.MimeInconsistency):
        as4.parse_user_message(b"", 'multipart/related; boundary="x"', our_key=ap2.key, our_cert=ap2.cert)


# --- header rules ---------------------------------------------------------------------------------


def _edit(valid: as4.BuiltMessage, ap2: Issued, fn) -> as4.ReceivedMessage:  # type: ignore[no-untyped-def]
    return parse(tamper(valid, soap=lambda root: fn(_messaging(root))), ap2)


def test_missing_message_id_is_an_invalid_header(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def drop(m: etree._Element) -> None:
        el = m.find(".//eb:MessageId", NS)
        el.getparent().remove(el)

    with pytest.raises(as4.InvalidHeader, match="MessageId"):
        _edit(valid, ap2, drop)


def test_missing_final_recipient_is_a_pmode_mismatch(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def drop(m: etree._Element) -> None:
        el = m.find(".//eb:Property[@name='finalRecipient']", NS)
        el.getparent().remove(el)

    with pytest.raises(as4.ProcessingModeMismatch, match="finalRecipient"):
        _edit(valid, ap2, drop)


def test_participant_property_without_type_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.OtherError, match="no type"):
        _edit(
            valid,
            ap2,
            lambda m: m.find(".//eb:Property[@name='originalSender']", NS).attrib.pop("type"),
        )


def test_agreement_with_type_is_a_pmode_mismatch(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.ProcessingModeMismatch, match="AgreementRef"):
        _edit(valid, ap2, lambda m: m.find(".//eb:AgreementRef", NS).set("type", "x"))


def test_wrong_party_type_is_a_pmode_mismatch(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.ProcessingModeMismatch, match="PartyId type"):
        _edit(
            valid,
            ap2,
            lambda m: m.find(".//eb:From/eb:PartyId", NS).set(
                "type", "urn:oasis:names:tc:ebcore:partyid-type:unregistered"
            ),
        )


def test_party_that_is_not_a_seat_id_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def set_party(m: etree._Element) -> None:
        m.find(".//eb:To/eb:PartyId", NS).text = "receiver-ap"

    with pytest.raises(as4.OtherError, match="seat id"):
        _edit(valid, ap2, set_party)


def test_tracking_identifier_is_not_allowed(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def add(m: etree._Element) -> None:
        props = m.find(".//eb:MessageProperties", NS)
        etree.SubElement(props, f"{{{EB}}}Property", name="trackingIdentifier").text = "t-1"

    with pytest.raises(as4.ValueInconsistent, match="trackingIdentifier"):
        _edit(valid, ap2, add)


def test_payload_in_the_soap_body_is_rejected(valid: as4.BuiltMessage, ap2: Issued) -> None:
    def fill(root: etree._Element) -> None:
        etree.SubElement(root.find("S12:Body", NS), "Invoice")

    with pytest.raises(as4.ValueInconsistent, match="Body must be empty"):
        parse(tamper(valid, soap=fill), ap2)


def test_unknown_compression_is_not_recognized(valid: as4.BuiltMessage, ap2: Issued) -> None:
    with pytest.raises(as4.ValueNotRecognized, match="CompressionType"):
        _edit(
            valid,
            ap2,
            lambda m: setattr(m.find(".//eb:Property[@name='CompressionType']", NS), "text", "application/zstd"),
        )


def test_uncompressed_payload_over_the_cap_is_refused(ap1: Issued, ap2: Issued) -> None:
    message = build(ap1, ap2, sbd() + b" " * 100_000, compress=False)
    with pytest.raises(as4.OtherError, match="exceeds"):
        parse(message, ap2, max_payload_bytes=50_000)
