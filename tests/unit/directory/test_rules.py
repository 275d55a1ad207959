"""The directory's pure decisions: the profile lifecycle, the SML outcome, the policies, the
services behind profiles and the participant id a company receives as."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from gateway.directory.companies import policy_changes
from gateway.directory.errors import (
    BadParticipant,
    BadPolicy,
    DirectoryError,
    IllegalMove,
    NoDefaultScheme,
    UnknownProfile,
)
from gateway.directory.profiles import (
    by_participant,
    profile_services,
    published_status,
    receiving_participant,
    sml_retry_delay,
)
from gateway.directory.queries import Profile
from gateway.directory.states import PROFILE_MOVES, ProfileStatus, check_move
from gateway.security.credentials import KeyStatus, granted_scopes, key_status
from gateway.security.errors import InvalidScope, SecurityError
from gateway.security.queries import ApiKey
from gateway.security.trust import RevocationUnknown, Revoked


def _profile(status: ProfileStatus, value: str = "991825827") -> Profile:
    now = datetime.now(UTC)
    return Profile(
        uuid.uuid4(),
        uuid.uuid4(),
        "PEPPOL",
        "ORDER",
        "PEPPOLBIS30",
        "iso6523-actorid-upis",
        f"0192:{value}",
        status,
        None,
        now,
        now,
    )


def test_every_status_has_its_moves_and_removed_is_final() -> None:
    assert set(PROFILE_MOVES) == set(ProfileStatus)
    assert not PROFILE_MOVES[ProfileStatus.REMOVED]
    assert check_move(ProfileStatus.ACTIVE, ProfileStatus.REMOVED) is ProfileStatus.REMOVED
    with pytest.raises(IllegalMove):
        check_move(ProfileStatus.REMOVED, ProfileStatus.ACTIVE)
    with pytest.raises(IllegalMove):
        check_move(ProfileStatus.FAILED, ProfileStatus.ACTIVE)


def test_sml_outcome_makes_a_pending_profile_active_or_keeps_it_pending_with_the_reason() -> None:
    assert published_status(_profile(ProfileStatus.PENDING), None) == (ProfileStatus.ACTIVE, None)
    assert published_status(_profile(ProfileStatus.PENDING), "down") == (ProfileStatus.PENDING, "down")
    assert published_status(_profile(ProfileStatus.PENDING), "removed scheme", permanent=True) == (
        ProfileStatus.FAILED,
        "removed scheme",
    )
    with pytest.raises(IllegalMove):
        published_status(_profile(ProfileStatus.REMOVED), None)
    with pytest.raises(IllegalMove):
        published_status(_profile(ProfileStatus.ACTIVE), "down")


def test_sml_retries_back_off_up_to_a_ceiling() -> None:
    delays = [sml_retry_delay(n, 60, 3600) for n in (1, 2, 3, 4, 7, 100)]
    assert delays == [60, 120, 240, 480, 3600, 3600]


def test_profiles_are_grouped_by_participant() -> None:
    a, b, c = (
        _profile(ProfileStatus.PENDING),
        _profile(ProfileStatus.PENDING),
        _profile(ProfileStatus.PENDING, "974760673"),
    )
    groups = by_participant([a, c, b])
    assert [len(rows) for rows in groups.values()] == [2, 1]


def test_policies_are_checked() -> None:
    assert policy_changes({"inbound_validation": "off"}) == {"inbound_validation": "off"}
    with pytest.raises(BadPolicy) as unknown:
        policy_changes({"verified": True})
    assert unknown.value.field == "verified"
    with pytest.raises(BadPolicy, match="reject, warn"):
        policy_changes({"outbound_validation": "off"})
    assert policy_changes({"duplicate_check": False}) == {"duplicate_check": False}
    with pytest.raises(BadPolicy, match="true or false"):
        policy_changes({"duplicate_check": "no"})


def test_unknown_profile_and_participant_are_directory_errors() -> None:
    assert profile_services(["ORDER"])
    with pytest.raises(UnknownProfile) as unknown:
        profile_services(["ORDER", "NO_SUCH"], "PEPPOLBIS30")
    assert (unknown.value.profile, unknown.value.field) == ("NO_SUCH", "profiles")
    assert str(receiving_participant("NO", "991825827", None)) == str(receiving_participant("DE", "", "0192:991825827"))
    with pytest.raises(NoDefaultScheme) as no_default:
        receiving_participant("DE", "123", None)
    assert isinstance(no_default.value, LookupError | DirectoryError)
    with pytest.raises(BadParticipant, match="check digit"):
        receiving_participant("NO", "991825828", None)


def test_key_status_and_scopes() -> None:
    now = datetime.now(UTC)
    key = ApiKey(uuid.uuid4(), None, uuid.uuid4(), "", ("operator",), "gwk_", now, None, None, None, None)
    assert key_status(key, now) is KeyStatus.ACTIVE
    assert granted_scopes(["a", "b"], None) == ["a", "b"]
    assert granted_scopes(["a", "b"], "b") == ["b"]
    with pytest.raises(InvalidScope):
        granted_scopes(["a"], "a c")


def test_trust_failures_are_security_errors() -> None:
    assert issubclass(Revoked, SecurityError) and issubclass(RevocationUnknown, SecurityError)
