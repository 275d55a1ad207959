"""The outbound lifecycle and outcome ladder as pure functions, and the document read once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

import as4
from gateway.documents.business import BusinessDocument
from gateway.documents.envelope import read_sbd, read_submitted
from gateway.outbound import outcome
from gateway.outbound.errors import OutboundError, Permanent, SubmissionError, Transient
from gateway.outbound.states import ALLOWED, IllegalMove, OutboundState, check_move
from gateway.outbound.submission import business_key, derive_submission
from tests.support.paths import EXAMPLES


def test_moves_follow_the_table() -> None:
    assert check_move("queued", "sending") is OutboundState.SENDING
    assert check_move(OutboundState.SENDING, OutboundState.SENDING) is OutboundState.SENDING  # lease ran out
    for final in (OutboundState.DELIVERED, OutboundState.FAILED):
        assert not ALLOWED[final]
        with pytest.raises(IllegalMove):
            check_move(final, OutboundState.SENDING)
    with pytest.raises(IllegalMove):
        check_move(OutboundState.QUEUED, OutboundState.DELIVERED)


def test_errors_share_one_root() -> None:
    for cls in (SubmissionError, Permanent, Transient):
        assert issubclass(cls, OutboundError)
    assert issubclass(SubmissionError, ValueError)


def test_outcome_ladder() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window = now + timedelta(seconds=60)
    failed = outcome.after_failure(Permanent("x", "no"), attempts=1, give_up_at=window, now=now, delay=5)
    assert isinstance(failed, outcome.Failed) and failed.state is OutboundState.FAILED and not failed.gave_up
    retry = outcome.after_failure(Transient("t", "later"), attempts=1, give_up_at=window, now=now, delay=5)
    assert isinstance(retry, outcome.Retry) and retry.next_attempt_at == now + timedelta(seconds=5)
    assert retry.reason == "later; next attempt in 5.0s"
    gave_up = outcome.after_failure(Transient("t", "later"), attempts=7, give_up_at=window, now=now, delay=120)
    assert isinstance(gave_up, outcome.Failed) and gave_up.gave_up
    assert gave_up.reason == "gave up after 7 attempts: later"
    assert outcome.backoff(1, initial=5, maximum=900) == 5
    assert outcome.backoff(20, initial=5, maximum=900) == 900
    invalid = outcome.failure_of(as4.InvalidHeader("bad receipt"))
    assert isinstance(invalid, Transient) and invalid.code == "invalid_receipt"
    assert outcome.failure_of(KeyError("x")) is None


def test_a_document_is_read_once() -> None:
    data = (EXAMPLES / "invoice.xml").read_bytes()
    envelope, business = read_submitted(data)
    assert envelope is None and business.data == data and business.name == "Invoice"
    assert business.sender_endpoint and business.receiver_endpoint and business.sender_country
    assert business.customization and business.profile and business.document_id and business.issue_date
    derived = derive_submission(business)
    assert derived.business is business
    assert business.root.getparent() is None  # wrapping copies, the document stays as it was
    read_envelope, inner = read_sbd(derived.sbd)
    assert etree.tostring(inner) == etree.tostring(business.root)
    again = derive_submission(derived.sbd)
    assert again.instance_identifier == read_envelope.instance_identifier
    assert isinstance(again.business, BusinessDocument) and again.business.read.kind == "business"


def test_a_document_is_known_again_by_its_parties_type_id_and_issue_date() -> None:
    invoice = (EXAMPLES / "invoice.xml").read_bytes()
    first = derive_submission(invoice)
    key = business_key(first)
    assert key is not None and business_key(derive_submission(invoice)) == key  # another envelope, same document
    assert business_key(derive_submission(invoice.replace(b"NS-2026-1001", b"NS-2026-1002", 1))) != key
    assert business_key(derive_submission(invoice.replace(b">2026-11-24<", b">2026-11-25<", 1))) != key
    assert business_key(derive_submission(invoice, receiver="0192:974760673")) != key
    for kind in ("mls", "mlr", "report"):  # the gateway's own messages have their own identifiers
        assert business_key(dataclasses.replace(first, kind=kind)) is None
