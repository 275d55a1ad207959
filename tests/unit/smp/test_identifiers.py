"""Peppol identifiers: forms, case rules, URL encoding and the per-country checks."""

from __future__ import annotations

import pytest

from smp import (
    DocumentTypeId,
    IdentifierError,
    ParticipantId,
    ProcessId,
    dns_name,
    profile_services,
)

INVOICE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017"
    "#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)


def test_participant_parses_with_and_without_scheme() -> None:
    assert ParticipantId.parse("iso6523-actorid-upis::0192:991825827") == ParticipantId.parse("0192:991825827")
    assert str(ParticipantId.parse("0192:991825827")) == "iso6523-actorid-upis::0192:991825827"


def test_participant_values_compare_case_insensitively_but_keep_their_case() -> None:
    upper = ParticipantId.parse("9944:NL004495445B01")
    lower = ParticipantId.parse("9944:nl004495445b01")
    assert upper == lower and hash(upper) == hash(lower)
    assert upper.value == "9944:NL004495445B01"


def test_participant_scheme_is_case_sensitive() -> None:
    with pytest.raises(IdentifierError, match="scheme must be"):
        ParticipantId.parse("ISO6523-ACTORID-UPIS::0192:991825827")


def test_participant_url_segment_is_percent_encoded() -> None:
    assert ParticipantId.parse("0192:991825827").url_segment == "iso6523-actorid-upis%3A%3A0192%3A991825827"


def test_document_type_url_segment_matches_the_smp_specification() -> None:
    segment = DocumentTypeId.parse("busdox-docid-qns::" + INVOICE).url_segment
    assert segment.startswith("busdox-docid-qns%3A%3Aurn%3Aoasis%3A")
    assert "%23%23urn%3Acen.eu%3Aen16931%3A2017%23compliant%23" in segment


def test_document_type_parts() -> None:
    doc = DocumentTypeId.parse(INVOICE)
    assert doc.root_namespace == "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
    assert doc.root_element == "Invoice"
    assert doc.customization_id.endswith("poacc:billing:3.0")
    assert doc.version == "2.1"


def test_document_type_is_case_sensitive() -> None:
    assert DocumentTypeId.parse(INVOICE) != DocumentTypeId.parse(INVOICE.replace("Invoice##", "invoice##"))


@pytest.mark.parametrize(
    "value",
    [
        "busdox-docid-qns::urn:x::Invoice##urn:peppol:pint:billing-1*::2.1",
        "peppol-doctype-wildcard::urn:x::Invoice##urn:peppol:pint:billing-1@*::2.1",
        "peppol-doctype-wildcard::urn:x::Invoice##a**::2.1",
    ],
)
def test_wildcards_are_only_valid_at_the_end_of_a_wildcard_registration(value: str) -> None:
    with pytest.raises(IdentifierError, match=r"\*"):
        DocumentTypeId.parse(value, registration=True)


def test_wildcard_registration_is_accepted() -> None:
    doc = DocumentTypeId.parse(
        "peppol-doctype-wildcard::urn:x::Invoice##urn:peppol:pint:billing-1*::2.1",
        registration=True,
    )
    assert doc.scheme == "peppol-doctype-wildcard"


def test_process_id_round_trip() -> None:
    process = ProcessId.parse("cenbii-procid-ubl::urn:fdc:peppol.eu:2017:poacc:billing:01:1.0")
    assert process == ProcessId.parse("urn:fdc:peppol.eu:2017:poacc:billing:01:1.0")
    with pytest.raises(IdentifierError):
        ProcessId.parse("urn:with space")


@pytest.mark.parametrize(
    "valid",
    [
        "0192:991825827", "0192:745707327", "0007:2120000787", "0216:003704944842TST01",
        "0216:003720774740", "0184:13585628", "0106:12345678", "9944:NL004495445B01",
        "9944:NL002455799B11", "0088:7300010000001", "0088:5790000435968", "0208:0566988259",
        "9925:BE0566988259", "0242:000306", "9915:test",
    ],
)  # fmt: skip
def test_valid_participants(valid: str) -> None:
    ParticipantId.parse(valid)


@pytest.mark.parametrize(
    ("invalid", "rule"),
    [
        ("0192:991825828", "MOD11"),
        ("0192:99182582", "9 digits"),
        ("0007:2120000788", "Luhn"),
        ("0007:212000078", "10 digits"),
        ("0216:003704944843", "Y-tunnus"),
        ("0216:0037049448421234567", "suffix"),
        ("0184:03585628", "does not start with 0"),
        ("0106:1234567A", "8 digits"),
        ("9944:NL123456789B90", "11-test"),
        ("9944:NL004495445B00", "not 00"),
        ("0088:5790000435969", "GS1"),
        ("0208:0566988258", "97"),
        ("9925:BE0566988258", "97"),
        ("0037:12345678", "removed from the Peppol code lists on 2024-12-31; use 0216"),
        ("0192", "ICD:id"),
        ("192:991825827", "4-digit ICD"),
        ("0192:" + "1" * 131, "1-130"),
    ],
)
def test_invalid_participants_name_the_rule(invalid: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as info:
        ParticipantId.parse(invalid)
    assert rule in info.value.rule


def test_danish_cvr_national_check_only_in_strict_mode() -> None:
    ParticipantId.parse("0184:13585627")
    with pytest.raises(IdentifierError, match="strict"):
        ParticipantId.parse("0184:13585627", strict=True)
    ParticipantId.parse("0184:13585628", strict=True)


def test_0182_is_rejected_with_a_pointer_to_0184() -> None:
    with pytest.raises(IdentifierError, match="0184"):
        ParticipantId.parse("0182:13585628")


def test_identifier_values_up_to_130_characters_are_accepted() -> None:
    ParticipantId.parse("9915:" + "a" * 130)


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("0088:123abc", "Y7DZFXAF3D4CJZ4KCGRXTEC6TWVCGA4KY7ZWA5BOIF6MSWD4TDRQ"),
        ("0088:123ABC", "Y7DZFXAF3D4CJZ4KCGRXTEC6TWVCGA4KY7ZWA5BOIF6MSWD4TDRQ"),
        ("0010:5798000000001", "XUKHFQABQZIKI3YKVR2FHR4SNFA3PF5VPQ6K4TONV3LMVSY5ARVQ"),
        ("0192:991825827", "7I2243UOLQ5QZB6JXFVI6YEI4IQ7SFIPKV55HTZFNR6S54Y6YUFA"),
        ("9915:test", "EH5BOAVAKTMBGZYH2A63DZ4QOV33FVP5NSDVQKLUCFRAAYOODW6A"),
    ],
)
def test_sml_dns_name_matches_the_published_vectors(value: str, label: str) -> None:
    participant = ParticipantId(value)  # 0088:123abc is not a valid GLN; the hash does not care
    assert dns_name(participant, "production") == f"{label}.iso6523-actorid-upis.participant.sml.prod.tech.peppol.org"


def test_test_zone_and_legacy_zones_resolve_by_name() -> None:
    p = ParticipantId.parse("0192:991825827")
    assert dns_name(p, "test").endswith(".iso6523-actorid-upis.participant.sml.test.tech.peppol.org")
    assert dns_name(p, "ec-test").endswith(".acc.edelivery.tech.ec.europa.eu")
    assert dns_name(p, "sml.local.").endswith(".iso6523-actorid-upis.sml.local")


def test_profiles_map_to_the_document_types_behind_them() -> None:
    names = [d.name for d in profile_services("INVOICE_AND_CREDIT_NOTE")]
    assert names == ["BIS3_INVOICE", "BIS3_CREDIT_NOTE"]
    assert profile_services("ORDER", "EHF30")[0].document_type.version == "2.2"
    with pytest.raises(KeyError, match="unknown profile"):
        profile_services("PIZZA")
    invoice = profile_services("INVOICE_AND_CREDIT_NOTE")[0]
    assert invoice.document_type == DocumentTypeId.parse(INVOICE)
