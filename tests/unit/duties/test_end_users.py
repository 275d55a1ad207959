"""The EUSR counts end users, not identifiers: one company is one end user whatever identifier it
used, and identifiers on Peppol's unification list that name the same company are one end user
(9925↔0208, 9930↔0246, 0037↔0216, case-insensitive)."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import etree

from gateway.duties.report_documents import (
    EndUserExchange,
    build_eusr,
    end_user_activity,
    unified_end_user,
)
from gateway.duties.validation import validate_report

INVOICE = "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
BILLING = "cenbii-procid-ubl::urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
OCTOBER = {"start": date(2026, 10, 1), "end": date(2026, 10, 31), "reporter": "POP000123"}
UPIS = "iso6523-actorid-upis::"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("9925:BE0123456749", "0208:0123456749"),
        ("9925:be0123456749", "0208:0123456749"),
        ("9930:DE123456789", "0246:DE123456789"),
        ("9930:de123456789", "0246:DE123456789-12345.ABC"),
        ("0037:003712345678", "0216:003712345678"),
        ("0037:1234567-8", "0216:003712345678"),
        ("0037:003712345678ab", "0216:003712345678AB"),
        ("0192:810418052", "0192:810418052"),
        ("0192:ABC", "0192:abc"),
    ],
)
def test_identifiers_on_the_unification_list_name_one_end_user(one: str, other: str) -> None:
    assert unified_end_user(UPIS + one) == unified_end_user(UPIS + other) == unified_end_user(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("0192:810418052", "9908:NO810418052"),  # not on the list: two identifiers, two names
        ("9925:BE0123456749", "0208:0123456748"),
        ("0216:003712345678", "0216:003712345679"),
    ],
)
def test_other_identifiers_stay_apart(one: str, other: str) -> None:
    assert unified_end_user(one) != unified_end_user(other)


def _fullset(exchanges: list[EndUserExchange]) -> list[int]:
    report = build_eusr(end_user_activity(exchanges), **OCTOBER)  # type: ignore[arg-type]
    result = validate_report(report)
    assert result.valid, result.as_json()["errors"]
    full = etree.fromstring(report).find("{*}FullSet")
    assert full is not None
    names = ("SendingEndUsers", "ReceivingEndUsers", "SendingOrReceivingEndUsers")
    return [int(full.findtext(f"{{*}}{n}") or -1) for n in names]


def test_two_companies_registered_under_unified_identifiers_count_once() -> None:
    exchanges = [
        EndUserExchange("company-a", UPIS + "9925:BE0123456749", "out", INVOICE, BILLING, "BE"),
        EndUserExchange("company-b", UPIS + "0208:0123456749", "in", INVOICE, BILLING, "BE"),
    ]
    assert _fullset(exchanges) == [1, 1, 1]


def test_a_company_using_two_identifiers_counts_once() -> None:
    exchanges = [
        EndUserExchange("company-a", UPIS + "0192:810418052", "out", INVOICE, BILLING, "NO"),
        EndUserExchange("company-a", UPIS + "9908:NO810418052", "out", INVOICE, BILLING, "NO"),
        EndUserExchange("company-a", UPIS + "9908:NO810418052", "in", INVOICE, BILLING, "NO"),
    ]
    assert _fullset(exchanges) == [1, 1, 1]


def test_unification_links_through_a_chain_of_companies_and_identifiers() -> None:
    exchanges = [
        EndUserExchange("company-a", UPIS + "0192:810418052", "out", INVOICE, BILLING, "NO"),
        EndUserExchange("company-a", UPIS + "9930:DE123456789", "out", INVOICE, BILLING, "NO"),
        EndUserExchange("company-b", UPIS + "0246:DE123456789", "in", INVOICE, BILLING, "NO"),
        EndUserExchange("company-c", UPIS + "0216:003712345678", "in", INVOICE, BILLING, "FI"),
    ]
    assert _fullset(exchanges) == [1, 2, 2]


def test_an_end_user_whose_company_was_deleted_is_still_counted_by_its_identifier() -> None:
    exchanges = [
        EndUserExchange(None, UPIS + "0037:003712345678", "in", INVOICE, BILLING, "FI"),
        EndUserExchange("company-c", UPIS + "0216:003712345678", "out", INVOICE, BILLING, "FI"),
        EndUserExchange(None, UPIS + "0007:5567321707", "in", INVOICE, BILLING, "SE"),
    ]
    assert _fullset(exchanges) == [1, 2, 2]
