"""The Peppol answers and reports as documents, without I/O: Message Level Status and its rules
(one hostile file per rule in tests/data/mls/), business responses built from the code lists,
and TSR/EUSR checked by the official reporting stylesheets (an implementation we did not write)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from lxml import etree

from gateway.duties.report_documents import EndUserActivity, ExchangeCount, build_eusr, build_tsr, month_period
from gateway.duties.responses import (
    Issue,
    LineStatus,
    ResponseError,
    build_invoice_response,
    build_mlr,
    build_mls,
    build_order_response,
    check_mls,
    check_response,
    read_document,
    spid_of_seat,
)
from gateway.duties.validation import validate_report
from tests.support.paths import DATA, EXAMPLES

MLS = DATA / "mls"
INSTANCE = "6f1b6f0c-2a55-4d7e-9a3b-0b8d1f2e3c4d"
INVOICE = (
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##"
    "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
BILLING = "cenbii-procid-ubl::urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
AS4 = "peppol-transport-as4-v2_0"
OCTOBER = {"start": date(2026, 10, 1), "end": date(2026, 10, 31), "reporter": "POP000001"}


def test_the_spid_is_the_six_digits_of_the_seat_id() -> None:
    assert spid_of_seat("POP000306") == "0242:000306"
    with pytest.raises(ValueError):
        spid_of_seat("ACME")


def test_a_positive_mls_follows_every_mls_rule() -> None:
    mls = build_mls(sender_spid="0242:000002", receiver_spid="0242:000001", referenced_instance=INSTANCE, code="AP")
    root = etree.fromstring(mls)
    assert check_mls(root) == []
    read = read_document(root)
    assert (read.kind, read.code, read.answers) == ("mls", "AP", (INSTANCE,))


def test_a_negative_mls_carries_a_description_and_its_failures() -> None:
    issues = [Issue("/Invoice/cac:LegalMonetaryTotal", "BV", "[BR-CO-16] amount due is wrong")]
    mls = build_mls(
        sender_spid="0242:000002", receiver_spid="0242:000001", referenced_instance=INSTANCE, code="RE",
        description="rejected", issues=issues, issued=datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
    )  # fmt: skip
    root = etree.fromstring(mls)
    assert check_mls(root) == []
    assert root.findtext(".//{*}IssueTime") == "09:30:00Z"
    assert root.findtext(".//{*}LineResponse//{*}StatusReasonCode") == "BV"


def test_a_negative_mls_without_a_failure_is_not_built() -> None:
    with pytest.raises(ResponseError):
        build_mls(sender_spid="0242:000002", receiver_spid="0242:000001", referenced_instance=INSTANCE, code="RE")
    with pytest.raises(ResponseError):
        build_mls(
            sender_spid="0242:000002", receiver_spid="0242:000001", referenced_instance=INSTANCE, code="RE",
            description="x", issues=[Issue("NA", "BW", "only a warning")],
        )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "rules"),
    [
        ("negative-without-issue.xml", {"SCH-MLS-22", "SCH-MLS-23"}),
        ("positive-with-failure.xml", {"SCH-MLS-24"}),
        ("unknown-response-code.xml", {"SCH-MLS-18"}),
        ("two-references.xml", {"SCH-MLS-20"}),
        ("local-time-and-bad-scheme.xml", {"SCH-MLS-06", "SCH-MLS-10"}),
    ],
)
def test_a_broken_mls_names_the_rules_it_breaks(name: str, rules: set[str]) -> None:
    broken = {rule for rule, _ in check_mls(etree.parse(str(MLS / name)).getroot())}
    assert broken == rules


def test_an_invoice_response_uses_the_bis_code_lists_and_references_the_invoice() -> None:
    doc = build_invoice_response(
        sender="0216:003720774740", receiver="0192:991825827", invoice_id="NS-2026-1001", invoice_type_code="380",
        code="UQ", reasons=[("PRI", "price differs from the contract")], actions=[("NIN", "")],
        sender_name="Suomen Osto Oy", receiver_name="Nordic Supplies AS",
    )  # fmt: skip
    root = etree.fromstring(doc)
    assert check_response(root) == []
    read = read_document(root)
    assert (read.kind, read.code, read.answers) == ("response", "UQ", ("NS-2026-1001",))
    assert read.reasons == ("PRI", "NIN")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"code": "XX"}, "code"),
        ({"code": "RE"}, "reasons"),  # a rejection says why
        ({"code": "AP", "reasons": [("WHY", "")]}, "reasons"),
        ({"code": "AP", "actions": [("CALL", "")]}, "actions"),
    ],
)
def test_an_invoice_response_outside_the_code_lists_is_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ResponseError) as caught:
        build_invoice_response(
            sender="0216:003720774740", receiver="0192:991825827", invoice_id="1", invoice_type_code="380",
            **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
    assert caught.value.field == field


def test_an_order_response_with_changes_answers_each_changed_line() -> None:
    doc = build_order_response(
        seller="0192:991825827", buyer="0216:003720774740", order_id="OSTO-5521", code="CA",
        lines=[LineStatus("1", "3", quantity="2", item_name="Pen"), LineStatus("2", "7", item_name="Ink")],
        seller_name="Nordic Supplies AS", buyer_name="Suomen Osto Oy", currency="EUR",
    )  # fmt: skip
    root = etree.fromstring(doc)
    assert check_response(root) == []
    assert [el.text for el in root.iter("{*}LineStatusCode")] == ["3", "7"]
    assert read_document(root).answers == ("OSTO-5521",)
    with pytest.raises(ResponseError):
        build_order_response(seller="0192:1", buyer="0216:2", order_id="O", code="CA")
    with pytest.raises(ResponseError):
        build_order_response(seller="0192:1", buyer="0216:2", order_id="O", code="AP", lines=[LineStatus("1", "5")])


def test_an_mlr_references_the_envelope_it_answers() -> None:
    doc = build_mlr(
        sender="0216:003720774740", receiver="0192:991825827", referenced_instance=INSTANCE, code="RE",
        issues=[Issue("/Invoice", "SV", "not UBL")],
    )  # fmt: skip
    read = read_document(etree.fromstring(doc))
    assert (read.kind, read.code, read.answers) == ("mlr", "RE", (INSTANCE,))
    with pytest.raises(ResponseError):
        build_mlr(sender="0216:1", receiver="0192:2", referenced_instance=INSTANCE, code="RE")


def test_a_business_document_reads_as_business_with_its_id_and_parties() -> None:
    read = read_document(etree.parse(str(EXAMPLES / "invoice.xml")).getroot())
    assert (read.kind, read.document_id, read.sender_name, read.receiver_name) == (
        "business", "NS-2026-1001", "Nordic Supplies AS", "Suomen Osto Oy",
    )  # fmt: skip


def test_month_periods_are_calendar_months() -> None:
    assert month_period("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    for bad in ("2026-13", "2026/10", "26-10"):
        with pytest.raises(ValueError):
            month_period(bad)


def test_a_tsr_with_traffic_both_ways_passes_the_official_rules() -> None:
    counts = [
        ExchangeCount("in", "POP000002", INVOICE, BILLING, AS4, "SE", "NO", 7),
        ExchangeCount("in", "POP000003", INVOICE, BILLING, AS4, None, "NO", 1),
        ExchangeCount("out", "POP000002", INVOICE, BILLING, AS4, "NO", None, 5),
    ]
    report = build_tsr(counts, **OCTOBER)  # type: ignore[arg-type]
    result = validate_report(report)
    assert result.valid, result.as_json()["errors"]
    assert result.layers_run == ["xml", "peppol-tsr"]
    root = etree.fromstring(report)
    assert [root.findtext("{*}Total/{*}Incoming"), root.findtext("{*}Total/{*}Outgoing")] == ["8", "5"]
    countries = [k.text for k in root.iter("{*}Key") if k.get("schemeID") == "SenderCountry"]
    assert sorted(countries) == ["SE", "ZZ"]  # a missing C1 country is reported as ZZ


def test_an_empty_month_still_gets_valid_reports() -> None:
    for report in (build_tsr([], **OCTOBER), build_eusr([], **OCTOBER)):  # type: ignore[arg-type]
        result = validate_report(report)
        assert result.valid, result.as_json()["errors"]


def test_a_tsr_whose_totals_do_not_add_up_fails_the_official_rules() -> None:
    report = build_tsr([ExchangeCount("in", "POP000002", INVOICE, BILLING, AS4, "SE", "NO", 4)], **OCTOBER)  # type: ignore[arg-type]
    tampered = report.replace(b"<Total><Incoming>4</Incoming>", b"<Total><Incoming>5</Incoming>")
    assert tampered != report
    result = validate_report(tampered)
    assert not result.valid and "SCH-TSR-04" in {f.rule_id for f in result.findings}


def test_the_eusr_counts_distinct_end_users_not_messages() -> None:
    activity = [
        EndUserActivity("company-a", "out", INVOICE, BILLING, "NO"),
        EndUserActivity("company-a", "in", INVOICE, BILLING, "NO"),
        EndUserActivity("company-b", "in", INVOICE, BILLING, "FI"),
    ]
    report = build_eusr(activity, **OCTOBER)  # type: ignore[arg-type]
    result = validate_report(report)
    assert result.valid, result.as_json()["errors"]
    root = etree.fromstring(report)
    full = [root.findtext(f"{{*}}FullSet/{{*}}{n}") for n in ("SendingEndUsers", "ReceivingEndUsers")]
    assert full == ["1", "2"] and root.findtext("{*}FullSet/{*}SendingOrReceivingEndUsers") == "2"
    per_country = {
        s.findtext("{*}Key"): s.findtext("{*}SendingOrReceivingEndUsers")
        for s in root.iter("{*}Subset")
        if s.get("type") == "PerEUC"
    }
    assert per_country == {"FI": "1", "NO": "1"}


def test_something_that_is_not_a_report_is_invalid_not_an_error() -> None:
    assert not validate_report(b"<not-a-report/>").valid
    assert not validate_report(b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>").valid
