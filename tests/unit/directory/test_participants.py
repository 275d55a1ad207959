"""A company's default Peppol participant id from its country and business id."""

from __future__ import annotations

import pytest

import smp
from gateway.directory.participants import default_participant


@pytest.mark.parametrize(
    ("country", "business_id", "expected"),
    [
        ("NO", "991825827", "0192:991825827"),
        ("SE", "2120000787", "0007:2120000787"),
        ("FI", "2077474-0", "0216:003720774740"),
        ("fi", "003720774740", "0216:003720774740"),
        ("DK", "13585628", "0184:13585628"),
        ("NL", "12345678", "0106:12345678"),
    ],
)
def test_default_scheme_per_country(country: str, business_id: str, expected: str) -> None:
    assert default_participant(country, business_id).value == expected


def test_unknown_country_asks_for_the_participant_id() -> None:
    with pytest.raises(LookupError, match="give the participant id"):
        default_participant("DE", "123")


def test_business_id_breaking_the_scheme_is_refused() -> None:
    with pytest.raises(smp.IdentifierError, match="check digit"):
        default_participant("NO", "991825828")
