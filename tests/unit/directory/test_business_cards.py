"""Business card rules, the indexer's retry decision and what ``receives`` means: plain functions."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

import smp
from gateway.directory.business_cards import card_changes, entity_of, indexer_action
from gateway.directory.discovery import EndpointReport, ParticipantReport, ProcessReport, ServiceReport
from gateway.directory.errors import BadBusinessCard, IllegalMove
from gateway.directory.indexer import attempt_outcome
from gateway.directory.queries import Company
from gateway.directory.states import IndexerAction, NotificationState, check_notification_move

COMPANY = Company(uuid.uuid4(), "Nordic Supplies AS", "NO", "991825827", True, "reject", "off", None, datetime.now(UTC))


def test_a_card_left_empty_takes_the_companys_name_and_country() -> None:
    publish, card = card_changes({}, COMPANY)
    assert publish is False
    assert card["names"] == [{"name": "Nordic Supplies AS", "language": None}]
    assert card["country"] == "NO"
    entity = entity_of(card)
    assert entity.names[0].name == "Nordic Supplies AS" and entity.registration_date is None


def test_a_full_card_becomes_the_entity_the_smp_publishes() -> None:
    publish, card = card_changes(
        {
            "publish": True, "names": [{"name": "Nordic", "language": "NB"}], "country": "no",
            "identifiers": [{"scheme": "VAT", "value": "NO991825827MVA"}], "websites": ["https://nordic.example"],
            "contacts": [{"email": "sales@nordic.example"}], "registration_date": "2026-01-02",
        },
        COMPANY,
    )  # fmt: skip
    assert publish is True
    entity = entity_of(card)
    assert entity.names == (smp.EntityName("Nordic", "nb"),)
    assert entity.country == "NO" and entity.registration_date == date(2026, 1, 2)
    assert entity.contacts == (smp.Contact(email="sales@nordic.example"),)
    pid = smp.ParticipantId.parse("0192:991825827")
    built = smp.build_business_card(smp.BusinessCard(pid, (entity,)))
    assert smp.parse_business_card(built) == smp.BusinessCard(pid, (entity,))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"names": []}, "names"),
        ({"names": [{"name": " "}]}, "names.name"),
        ({"country": "NOR"}, "country"),
        ({"contacts": [{}]}, "contacts"),
        ({"websites": ["javascript:alert(1)"]}, "websites"),
        ({"identifiers": [{"scheme": "VAT"}]}, "identifiers.value"),
        ({"registration_date": "2026-13-01"}, "registration_date"),
    ],
)
def test_bad_fields_are_named(change: dict[str, object], field: str) -> None:
    with pytest.raises(BadBusinessCard) as caught:
        card_changes(change, COMPANY)
    assert caught.value.field == field


def test_the_indexer_is_told_what_changed_for_the_directory() -> None:
    assert indexer_action(True, False) is IndexerAction.INDEX
    assert indexer_action(True, True) is IndexerAction.INDEX
    assert indexer_action(False, True) is IndexerAction.REMOVE
    assert indexer_action(False, False) is None


def test_a_notification_is_retried_until_it_gives_up() -> None:
    now = datetime.now(UTC)
    assert attempt_outcome(204, now, now, retry_interval=300, give_up_after=3600) == (NotificationState.SENT, None)
    assert attempt_outcome(None, now, now, retry_interval=300, give_up_after=3600) == (NotificationState.PENDING, 300)
    late = now - timedelta(seconds=3500)
    assert attempt_outcome(503, late, now, retry_interval=300, give_up_after=3600) == (NotificationState.FAILED, None)
    assert check_notification_move(NotificationState.FAILED, NotificationState.PENDING) is NotificationState.PENDING
    with pytest.raises(IllegalMove):
        check_notification_move(NotificationState.SENT, NotificationState.FAILED)


def _service(document_type: smp.DocumentTypeId, *, trusted: bool = True, active: bool = True) -> ServiceReport:
    endpoint = smp.Endpoint(url="https://ap.example/as4", certificate=None)  # type: ignore[arg-type]
    process = smp.profile_services("ORDER")[0].process
    return ServiceReport(document_type, (ProcessReport(process, (EndpointReport(endpoint, active, trusted),)),))


def test_receives_answers_the_filter() -> None:
    pid = smp.ParticipantId.parse("0007:5567321707")
    invoice, credit_note = (d.document_type for d in smp.profile_services("INVOICE_AND_CREDIT_NOTE"))
    only_invoice = (_service(invoice),)
    assert ParticipantReport(pid, True, "x", services=only_invoice).receives
    assert not ParticipantReport(pid, True, "x", services=only_invoice, wanted=(invoice, credit_note)).receives
    both = (_service(invoice), _service(credit_note))
    assert ParticipantReport(pid, True, "x", services=both, wanted=(invoice, credit_note)).receives
    untrusted = (_service(invoice, trusted=False),)
    assert not ParticipantReport(pid, True, "x", services=untrusted, wanted=(invoice,)).receives
    assert not ParticipantReport(pid, False, "x").receives
