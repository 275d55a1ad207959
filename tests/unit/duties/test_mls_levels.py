"""The MLS service-level and rule decisions, without a database: which documents owe an MLS,
the codes, when operators are warned, the figures, and how MLS delivery failures are treated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.directory.companies import policy_changes
from gateway.directory.errors import BadPolicy
from gateway.duties.mls_levels import MLS_1, MLS_2, LevelFigures, mls_owed, positive_code, warn_from
from gateway.outbound import outcome
from gateway.outbound.errors import Permanent, Transient


def test_an_mls_is_owed_on_rejection_or_when_always_send_is_asked_and_never_for_an_mls_or_mlr() -> None:
    assert mls_owed("business", None, accepted=False)
    assert not mls_owed("business", None, accepted=True)  # absent MLS_TYPE: FAILURE_ONLY
    assert not mls_owed("business", "FAILURE_ONLY", accepted=True)
    assert mls_owed("response", "ALWAYS_SEND", accepted=True)
    assert not mls_owed("mls", "ALWAYS_SEND", accepted=False)
    assert not mls_owed("mlr", "ALWAYS_SEND", accepted=True)
    assert positive_code(True) == "AP" and positive_code(False) == "AB"
    assert positive_code(False, acknowledged=True) == "AP"


def test_operators_are_warned_a_margin_before_each_limit() -> None:
    assert warn_from(MLS_1, timedelta(minutes=5)) == timedelta(minutes=15)
    assert warn_from(MLS_2, timedelta(minutes=5)) == timedelta(minutes=20)
    assert warn_from(MLS_1, timedelta(hours=1)) == timedelta(0)


def test_the_share_counts_what_came_and_what_is_overdue_not_what_still_waits() -> None:
    figures = LevelFigures("POP000002", count=1000, with_mls=990, within_limit=986, waiting=5, overdue=5,
                           p50_seconds=3.0, p99_seconds=1300.0)  # fmt: skip
    assert figures.measured == 995
    assert figures.share_within_limit == pytest.approx(986 / 995)
    assert figures.meets(MLS_1) is False
    shown = figures.as_json(MLS_1)
    assert shown["meets_target"] is False and shown["waiting"] == 5 and shown["p99_seconds"] == 1300.0
    nothing = LevelFigures(None, 0, 0, 0, 0, 0, None, None)
    assert nothing.share_within_limit is None and nothing.meets(MLS_1) is None


def test_an_mls_whose_receiver_cannot_be_resolved_is_retried_and_a_business_document_is_not() -> None:
    unknown = Permanent("receiver_not_registered", "not in the SML")
    assert isinstance(outcome.for_kind(unknown, "mls"), Transient)
    assert outcome.for_kind(unknown, "business") is unknown
    refused = Permanent("ebms_0004", "the receiver refused it")
    assert outcome.for_kind(refused, "mls") is refused
    now = datetime(2026, 7, 2, 12, tzinfo=UTC)
    decided = outcome.after_failure(unknown, attempts=1, give_up_at=now + timedelta(hours=1), now=now, delay=5)
    assert outcome.turns_to_fallback(unknown, decided)  # an MLS_TO that is not registered
    dns = Transient("dns_failure", "timeout")
    retry = outcome.after_failure(dns, attempts=1, give_up_at=now + timedelta(hours=1), now=now, delay=5)
    assert not outcome.turns_to_fallback(dns, retry)
    gave_up = outcome.after_failure(dns, attempts=9, give_up_at=now, now=now, delay=5)
    assert outcome.turns_to_fallback(dns, gave_up)


def test_positive_mls_is_a_company_setting_with_two_values() -> None:
    assert policy_changes({"positive_mls": "on_acknowledge"}) == {"positive_mls": "on_acknowledge"}
    with pytest.raises(BadPolicy, match="on_processing, on_acknowledge"):
        policy_changes({"positive_mls": "later"})
