"""The participant identifier schemes of the Peppol code lists v9.7: every entry, its state and
dates, with "today" given so the decision can be checked on any day."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources

import pytest

from smp import IdentifierError, ParticipantId, RegistrationError, SmlManagementClient
from smp._schemes import CODE_LIST_VERSION, ICD_SCHEMES, SchemeState, registration_problem, scheme_problem

BEFORE_0193_REMOVAL = date(2026, 7, 6)
REMOVAL_0193 = date(2026, 7, 7)
LATER = date(2026, 11, 22)


def test_the_data_file_is_the_whole_code_list() -> None:
    text = (resources.files("smp") / "data" / f"participant-schemes-v{CODE_LIST_VERSION}.json").read_text()
    document = json.loads(text)
    assert document["version"] == CODE_LIST_VERSION == "9.7"
    assert len(ICD_SCHEMES) == len(document["schemes"]) == 105
    states = {s.state for s in ICD_SCHEMES.values()}
    assert states == {SchemeState.ACTIVE, SchemeState.DEPRECATED, SchemeState.REMOVED}
    # every removed entry says when
    assert all(s.removal_date for s in ICD_SCHEMES.values() if s.state is SchemeState.REMOVED)


@pytest.mark.parametrize(
    ("icd", "scheme_id", "state", "removal"),
    [
        ("0192", "NO:ORG", "active", None),
        ("0158", "SK:ICO", "active", None),  # new in 9.7
        ("0193", "UBLBE", "deprecated", "2026-07-07"),
        ("0037", "FI:OVT", "removed", "2024-12-31"),
        ("9954", "NL:OIN", "removed", "2026-03-31"),
        ("9909", "NO:VAT", "deprecated", None),
        ("9959", "US:EIN", "active", None),
    ],
)
def test_entries_carry_state_and_dates(icd: str, scheme_id: str, state: str, removal: str | None) -> None:
    scheme = ICD_SCHEMES[icd]
    assert (scheme.scheme_id, scheme.state.value) == (scheme_id, state)
    assert scheme.removal_date == (date.fromisoformat(removal) if removal else None)


def test_0193_is_usable_until_its_removal_date_and_refused_from_then_on() -> None:
    assert ParticipantId.parse("0193:UBLBE12345", today=BEFORE_0193_REMOVAL).icd == "0193"
    for day in (REMOVAL_0193, LATER):
        with pytest.raises(IdentifierError) as info:
            ParticipantId.parse("0193:UBLBE12345", today=day)
        assert info.value.rule == "0193 was removed from the Peppol code lists on 2026-07-07"


def test_removed_scheme_names_its_date_and_successor() -> None:
    with pytest.raises(IdentifierError) as info:
        ParticipantId.parse("9908:991825827", today=LATER)
    assert info.value.rule == "9908 was removed from the Peppol code lists on 2023-05-24; use 0192 (NO:ORG)"


def test_unknown_icd_is_refused() -> None:
    with pytest.raises(IdentifierError, match="unknown participant identifier scheme 9999"):
        ParticipantId.parse("9999:abc", today=LATER)
    with pytest.raises(IdentifierError, match="unknown participant identifier scheme 0010"):
        ParticipantId.of("iso6523-actorid-upis", "0010:5798000000001", today=LATER)


def test_0182_points_at_0184() -> None:
    with pytest.raises(IdentifierError, match="did you mean 0184"):
        ParticipantId.parse("0182:13585628", today=LATER)


@pytest.mark.parametrize(
    "valid",
    [
        "0060:812810734",
        "0096:1234567890",
        "0151:51824753556",
        "0158:12345678",
        "0183:CHE123456789",
        "0190:00000001820029336000",
        "0195:SGUEN201401234A",
        "0198:DK13585628",
        "0199:5493001KJTIIGC8Y1R12",
        "0204:991-33333TEST-33",
        "0211:IT12345678901",
        "0235:1234567890",
        "0242:000306",
        "0246:DE123456789",
        "9930:DE298946909",
        "9957:FR12345678901",
        "0002:784301772",
    ],
)
def test_code_list_rules_accept_valid_values(valid: str) -> None:
    assert ParticipantId.parse(valid, today=LATER).value == valid


@pytest.mark.parametrize(
    ("invalid", "rule"),
    [
        ("0060:81281073", "[0-9]{9}"),
        ("0151:51824753557", "mod 89"),
        ("0199:5493001KJTIIGC8Y1R13", "MOD 97-10"),
        ("0198:DK13585627", "MOD11"),
        ("0002:784301773", "Luhn"),
        ("0183:CHE12345678", "CHE[0-9]{9}"),
        ("0248:OM123", "OM[0-9]{10}"),
    ],
)
def test_code_list_rules_refuse_invalid_values(invalid: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as info:
        ParticipantId.parse(invalid, today=LATER)
    assert rule in info.value.rule


def test_registration_refuses_removed_and_unregistrable_schemes() -> None:
    assert registration_problem("0192", LATER) is None
    assert registration_problem("0193", BEFORE_0193_REMOVAL) is None
    assert registration_problem("0193", LATER) == "0193 was removed from the Peppol code lists on 2026-07-07"
    assert "may not be registered" in (registration_problem("0205", LATER) or "")
    assert scheme_problem("0205", LATER) is None  # IT:COD is active but not for SML registration


async def test_sml_client_refuses_a_stored_participant_once_its_scheme_is_removed() -> None:
    stored = ParticipantId.parse("0193:UBLBE12345", today=BEFORE_0193_REMOVAL)
    client = SmlManagementClient("http://127.0.0.1:9", "SMP-1", today=lambda: LATER)
    with pytest.raises(RegistrationError, match="removed from the Peppol code lists on 2026-07-07"):
        await client.register(stored)
