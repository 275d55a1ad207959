"""Signed AS4 receipts that other access points really sent (Governikus, Dataport on Holodeck
B2B, phase4; March 2022), read the way the gateway reads the answer to a message it sent:
``parse_signal`` (signature value, every reference digest, NonRepudiationInformation,
RefToMessageId) and then ``verify_receipt``.

What is not checked here, and why: ``parse_signal`` never judges the signer's certificate; the
gateway judges the receiver's certificate from the SMP (chain, validity, revocation) before it
sends, and ``verify_receipt(..., receiver_cert=...)`` pins the receipt's signer to exactly that
certificate. Here the certificate is given: the one in the receipt's BinarySecurityToken, read
by the test itself. Its chain is the one thing skipped, because the Peppol G2 test CA that
issued it is not in the corpus; its validity window is checked at the receipt's own timestamp
(all of them have expired since).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from lxml import etree

import as4
from tests.support.receipt_corpus import CapturedResponse, read_response

EB = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/"


@dataclass(frozen=True)
class Expected:
    """What each receipt says, read off the file by eye."""

    signer: str  # seat id in the signing certificate
    message_id: str  # the receipt's own
    ref_to: str  # the message it answers
    timestamp: datetime
    signed: dict[str, str]  # the receipt's own signature: URI -> part covered
    nri: dict[str, str]  # NonRepudiationInformation: URI -> digest


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


DATAPORT = Expected(
    signer="PDE000357",
    message_id="18acfd2d-1fb6-44dd-a196-a077132cf999@lppapqa002.dpaorinp.de",
    ref_to="669beff6-bf89-4776-9a27-eddece68083d@phase4",
    timestamp=_at("2022-03-07T16:36:50.994"),
    signed={
        "#id-4b28412d2948bca-f4a2-48fe-8503-d3693f501057": "messaging",
        "#id-4b28412c9527071-f3c0-406a-9e39-5ae6f13ba71c": "body",
    },
    nri={
        "#phase4-msg-e87d1f6e-705d-49bf-a6de-524d66c9e394": "t/JlJ1h8YnmMKWVApPrbKq/8tnTDBdYinTVQ2ccQM74=",
        "#id-4599d632-a960-4d4d-b395-84feaec90c1a": "Td6HtJSesRwAL9zbF8n0WdmFVmPlGo4vM6PJlQ0DU1E=",
        "cid:phase4-att-558f9b48-17d0-43f9-bfb6-e0c9574c26b0@cid": "wjREvlHuhpOwKFpGkvrcZDRWmeqhIpHtS6IzPcH84OI=",
    },
)
EXPECTED = {
    "dataport1-mustunderstand.as4in": DATAPORT,
    "governikus.as4in": Expected(
        signer="POP000260",
        message_id="03528358-a714-49bc-bce8-9bfabb01fa78@vt-peppol-c3",
        ref_to="6b52b4c0-de6a-46b8-8286-27bac7d1a463@phase4",
        timestamp=_at("2022-03-07T17:41:28.705"),
        signed={
            "#id-4b2841275ffe7f7-72b2-4897-9c3d-d8fa3de25da9": "messaging",
            "#id-4b28412004e76e8-3f3c-4311-9751-c926b8d2e12f": "body",
        },
        nri={
            "#phase4-msg-d3361660-1069-4e19-bb10-1e99f888febc": "IXej+yqOYl2EECU+plH0R0PweMqYVGsO+3jQ0M6RcBU=",
            "#id-7f453f33-6c56-4daa-8e6c-4bb30fdbbd09": "qVguH/wtGtn5VL0Sc5xOwjiRuBCdQ51Jbq2pzBN+KDY=",
            "cid:phase4-att-a9c35290-9a50-4496-98c5-16d4741b4d99@cid": "vxvx4n/wAhjNakFRSzp110Fws/NDH6+cvw5ztX8PHfI=",
        },
    ),
    "helger.as4in": Expected(
        signer="POP000306",
        message_id="1384cf77-2de9-4303-a4e7-ca935a20f4fd@phase4",
        ref_to="3b3775c9-e88d-47f9-be5a-8e045ca2bc07@phase4",
        timestamp=_at("2022-03-07T17:36:50.173"),
        signed={
            "#phase4-msg-a9255f87-075b-4348-b125-beb6cee397e9": "messaging",
            "#id-c80f8255-da5a-4c42-8e4b-9b66bac931d7": "body",
        },
        nri={
            "#phase4-msg-9cb62f4d-7132-4b52-93cf-79aa82d8c12f": "eBoEt57eL9ZtoOKfIC472DZMSSvngRaCoECibk7bKdU=",
            "#id-0895ace8-af3b-410f-85ec-0227b4f97cd9": "CNchdLyH1dNC8hfy4BzJRm3ftCfbOZc8nyGrnshGqcw=",
            "cid:phase4-att-8f153eee-52ce-4a39-96a6-2a13296991bb@cid": "QqSdtJKU3B3E1EoRPoVrCfgkGhfUaGNDmKdyA4WdJ+A=",
        },
    ),
}
VALID = sorted(EXPECTED)


def _sent(message_id: str, digests: dict[str, str]) -> as4.BuiltMessage:
    """The message phase4 sent, as far as its receipt can tell: its MessageId and the digests
    it signed (``verify_receipt`` compares nothing else)."""
    header = as4.UserMessageHeader(
        message_id=message_id, conversation_id="c", timestamp=datetime(2022, 3, 7, tzinfo=UTC),
        from_party="POP000306", to_party="POP000000", service="s", action="a",
        original_sender="0000:s", final_recipient="0000:r",
    )  # fmt: skip
    return as4.BuiltMessage(header, b"", "", dict(digests), "")


@pytest.mark.parametrize("name", VALID)
def test_a_real_receipt_verifies_and_is_read(name: str) -> None:
    response = read_response(name)
    expected = EXPECTED[name]
    assert response.content_type.replace(" ", "").startswith("application/soap+xml;")

    receipt = as4.parse_signal(response.body, response.content_type)

    # signature value and every reference: parse_signal raises unless all hold; the checks say so
    assert {check.uri: check.target for check in receipt.references} == expected.signed
    assert all(check.valid is True for check in receipt.references)
    # the receipt itself and what it answers
    assert receipt.message_id == expected.message_id
    assert receipt.ref_to_message_id == expected.ref_to
    assert receipt.timestamp == expected.timestamp
    # NonRepudiationInformation: the three references phase4 signed (Messaging, Body, payload)
    assert receipt.digests == expected.nri

    given = response.token_certificate()
    assert receipt.signer_certificate == given
    assert as4.seat_id(given) == expected.signer
    # chain skipped (the G2 test CA is not in the corpus); the validity window is not
    assert given.not_valid_before_utc <= expected.timestamp <= given.not_valid_after_utc
    assert given.not_valid_after_utc < datetime.now(UTC)

    as4.verify_receipt(receipt, _sent(expected.ref_to, expected.nri), receiver_cert=given)


@pytest.mark.parametrize("name", VALID)
def test_a_real_receipt_is_refused_for_another_message_or_other_digests(name: str) -> None:
    response = read_response(name)
    expected = EXPECTED[name]
    receipt = as4.parse_signal(response.body, response.content_type)
    with pytest.raises(as4.InvalidReceipt, match="refers to"):
        as4.verify_receipt(receipt, _sent("other@phase4", expected.nri))
    other = dict(expected.nri)
    other[next(iter(other))] = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(as4.InvalidReceipt, match="digests differ"):
        as4.verify_receipt(receipt, _sent(expected.ref_to, other))


@pytest.mark.parametrize("name", VALID)
def test_a_real_receipt_with_one_character_changed_is_refused(name: str) -> None:
    response = read_response(name)
    ref_to = EXPECTED[name].ref_to.encode()
    assert response.body.count(ref_to) == 1
    changed = response.body.replace(ref_to, b"0" + ref_to[1:])
    with pytest.raises(as4.InvalidReceipt, match="digest does not match"):
        as4.parse_signal(changed, response.content_type)


# -- dataport1.as4in: the same receipt with its Messaging header re-prefixed after signing ------------

SIGNED_MESSAGING = "1VP+i4BoSXRYzcZqvAh+rOlU5Q3VcXWQQKAXxafpq1A="
AS_SENT = b'mustUnderstand:mustUnderstand="true"><eb3:SignalMessage>'
AS_CAPTURED = b'soapenv:mustUnderstand="true"><eb3:SignalMessage>'


def _dataport1() -> CapturedResponse:
    return read_response("dataport1.as4in")


def test_dataport1_is_refused_for_its_messaging_digest() -> None:
    """``dataport1.as4in`` is ``dataport1-mustunderstand.as4in`` with one change: on eb3:Messaging
    the attribute ``mustUnderstand:mustUnderstand="true"`` (a prefix bound to the SOAP 1.2
    namespace on that very element) became ``soapenv:mustUnderstand="true"``. The SignedInfo,
    SignatureValue and both DigestValues are byte for byte the same, so the signature still
    verifies over SignedInfo and the Body digest still holds, but the Messaging digest cannot:
    canonical XML (inclusive and exclusive, C14N 1.0 and 1.1) keeps every prefix as written and
    renders a namespace declaration only where it is visibly used or in the PrefixList, so the
    canonical Messaging now reads ``soapenv:mustUnderstand`` and no longer declares
    ``xmlns:mustUnderstand``. The expanded names are equal; the signed octets are not. xmlsec1
    1.2.37 fails the same reference (tests/system/interop/test_external_receipts.py), and
    phase4's own signature tool for these files only ever verifies the -mustunderstand one. A
    verifier that accepted this would accept a header changed after signing."""
    response = _dataport1()
    with pytest.raises(as4.InvalidReceipt) as refused:
        as4.parse_signal(response.body, response.content_type)
    assert refused.value.code == "EBMS:0302"
    messaging = next(uri for uri, target in DATAPORT.signed.items() if target == "messaging")
    assert f"reference {messaging!r}: digest does not match the content" in refused.value.reason


def _canonical_messaging_digests(response: CapturedResponse) -> dict[str, str]:
    """The SHA-256 of eb:Messaging under each canonicalization a signer could have meant."""
    messaging = etree.fromstring(response.body).find(f".//{{{EB}}}Messaging")
    assert messaging is not None
    every_prefix = [p for p in messaging.nsmap if p]
    forms = {
        "exclusive, the reference's PrefixList": etree.tostring(
            messaging, method="c14n", exclusive=True, inclusive_ns_prefixes=["soapenv", "xsd", "xsi"]
        ),
        "exclusive, no PrefixList": etree.tostring(messaging, method="c14n", exclusive=True),
        "exclusive, every prefix in scope": etree.tostring(
            messaging, method="c14n", exclusive=True, inclusive_ns_prefixes=every_prefix
        ),
        "inclusive": etree.tostring(messaging, method="c14n", exclusive=False),
    }
    return {form: base64.b64encode(hashlib.sha256(canonical).digest()).decode() for form, canonical in forms.items()}


def test_dataport1_digest_matches_no_canonical_form_of_its_messaging_header() -> None:
    sibling = _canonical_messaging_digests(read_response("dataport1-mustunderstand.as4in"))
    assert sibling["exclusive, the reference's PrefixList"] == SIGNED_MESSAGING  # the procedure is right
    captured = _canonical_messaging_digests(_dataport1())
    assert SIGNED_MESSAGING not in captured.values(), captured


def test_dataport1_with_the_prefix_as_signed_is_its_sibling_and_verifies() -> None:
    response = _dataport1()
    assert response.body.count(AS_CAPTURED) == 1
    restored = response.body.replace(AS_CAPTURED, AS_SENT)
    assert restored == read_response("dataport1-mustunderstand.as4in").body
    receipt = as4.parse_signal(restored, response.content_type)
    assert receipt.ref_to_message_id == DATAPORT.ref_to
    assert [check.digest for check in receipt.references if check.target == "messaging"] == [SIGNED_MESSAGING]
