"""Peppol Directory business cards: what a company tells the Directory about itself.

The card is stored per company and served by our SMP (``/businesscard/{participant}``, for each
of the company's participants) only while the company publishes it and is verified. Every change
queues a notification of the Directory's indexer for each participant in the same transaction
(``index`` while published, ``remove`` when publishing stops), which
:class:`~gateway.directory.indexer.DirectoryIndexer` then delivers.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

import asyncpg

import smp
from gateway.directory import queries
from gateway.directory.errors import BadBusinessCard
from gateway.directory.queries import Company, StoredCard
from gateway.directory.states import IndexerAction

__all__ = [
    "CARD_FIELDS",
    "DatabaseCardSource",
    "card_changes",
    "default_card",
    "entity_of",
    "indexer_action",
    "save_card",
]

CARD_FIELDS = (
    "names",
    "country",
    "geographical_information",
    "identifiers",
    "websites",
    "contacts",
    "additional_information",
    "registration_date",
)
_MAX_TEXT = 1000
_MAX_ITEMS = 20


def _text(value: Any, field: str, *, required: bool = False, limit: int = _MAX_TEXT) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadBusinessCard(f"{field} is required", field)
        return None
    if not isinstance(value, str):
        raise BadBusinessCard(f"{field} is a string", field)
    if len(value) > limit or "\x00" in value:
        raise BadBusinessCard(f"{field} is at most {limit} characters", field)
    return value.strip()


def _items(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise BadBusinessCard(f"{field} is a list of at most {_MAX_ITEMS}", field)
    return value


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadBusinessCard(f"each of {field} is an object", field)
    return value


def _language(value: Any, field: str) -> str | None:
    text = _text(value, field, limit=2)
    if text is not None and (len(text) != 2 or not text.isascii() or not text.isalpha()):
        raise BadBusinessCard(f"{field} is an ISO 639-1 code (two letters)", field)
    return None if text is None else text.lower()


def _names(body: Mapping[str, Any], company: Company) -> list[dict[str, str | None]]:
    if body.get("names") is not None:
        names = [
            {
                "name": _text(_object(n, "names").get("name"), "names.name", required=True),
                "language": _language(_object(n, "names").get("language"), "names.language"),
            }
            for n in _items(body["names"], "names")
        ]
        if not names:
            raise BadBusinessCard("names needs at least one name", "names")
        return names
    return [{"name": _text(body.get("name"), "name") or company.name, "language": None}]


def _website(value: Any) -> str:
    text = _text(value, "websites", required=True)
    assert text is not None
    if not text.lower().startswith(("https://", "http://")) or any(c.isspace() for c in text):
        raise BadBusinessCard("websites are http(s) URLs", "websites")
    return text


def _registration_date(value: Any) -> str | None:
    text = _text(value, "registration_date", limit=10)
    if text is None:
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadBusinessCard("registration_date is YYYY-MM-DD", "registration_date") from None


def card_changes(body: Mapping[str, Any], company: Company) -> tuple[bool, dict[str, Any]]:
    """``(publish, card)`` from a request body, checked; what is left out takes the company's
    name and country. :class:`BadBusinessCard` names the field that is wrong."""
    unknown = sorted(set(body) - {"publish", "name", *CARD_FIELDS})
    if unknown:
        raise BadBusinessCard(f"{unknown[0]} is not a business card field", unknown[0])
    publish = body.get("publish", False)
    if not isinstance(publish, bool):
        raise BadBusinessCard("publish is true or false", "publish")
    country = (_text(body.get("country"), "country", limit=2) or company.country).upper()
    if len(country) != 2 or not country.isascii() or not country.isalpha():
        raise BadBusinessCard("country is an ISO 3166 alpha-2 code", "country")
    identifiers = []
    for item in _items(body.get("identifiers"), "identifiers"):
        entry = _object(item, "identifiers")
        identifiers.append(
            {
                "scheme": _text(entry.get("scheme"), "identifiers.scheme", required=True, limit=100),
                "value": _text(entry.get("value"), "identifiers.value", required=True, limit=200),
            }
        )
    contacts = []
    for item in _items(body.get("contacts"), "contacts"):
        entry = _object(item, "contacts")
        contact = {k: _text(entry.get(k), f"contacts.{k}", limit=200) for k in ("type", "name", "phone", "email")}
        if not any(contact.values()):
            raise BadBusinessCard("a contact needs a type, name, phone or email", "contacts")
        contacts.append(contact)
    card = {
        "names": _names(body, company),
        "country": country,
        "geographical_information": _text(body.get("geographical_information"), "geographical_information"),
        "identifiers": identifiers,
        "websites": [_website(w) for w in _items(body.get("websites"), "websites")],
        "contacts": contacts,
        "additional_information": _text(body.get("additional_information"), "additional_information", limit=4000),
        "registration_date": _registration_date(body.get("registration_date")),
    }
    return publish, card


def default_card(company: Company) -> dict[str, Any]:
    """The card of a company that has not stored one: its name and country."""
    return card_changes({}, company)[1]


def entity_of(card: Mapping[str, Any]) -> smp.BusinessEntity:
    """A stored card as the SMP publishes it."""
    registered = card.get("registration_date")
    return smp.BusinessEntity(
        names=tuple(smp.EntityName(n["name"], n.get("language")) for n in card["names"]),
        country=card["country"],
        geographical_information=card.get("geographical_information"),
        identifiers=tuple(smp.EntityIdentifier(i["scheme"], i["value"]) for i in card.get("identifiers", [])),
        websites=tuple(card.get("websites", [])),
        contacts=tuple(
            smp.Contact(c.get("type"), c.get("name"), c.get("phone"), c.get("email")) for c in card.get("contacts", [])
        ),
        additional_information=card.get("additional_information"),
        registration_date=date.fromisoformat(registered) if registered else None,
    )


def indexer_action(publish: bool, published_before: bool) -> IndexerAction | None:
    """What the indexer is told after a change: read the card again while it is published,
    forget the participant when it stops being published, nothing for a card never shown."""
    if publish:
        return IndexerAction.INDEX
    return IndexerAction.REMOVE if published_before else None


async def save_card(
    pool: asyncpg.Pool, company_id: uuid.UUID, publish: bool, card: dict[str, Any], *, notify: bool
) -> StoredCard:
    """Store the card and, with ``notify`` (an indexer is configured), queue the indexer's
    notifications for the company's participants in the same transaction."""
    async with pool.acquire() as conn, conn.transaction():
        stored, before = await queries.save_business_card(conn, company_id, publish=publish, card=card)
        action = indexer_action(publish, before)
        if notify and action is not None:
            participants = await queries.company_participants(conn, company_id)
            await queries.queue_indexer_notifications(conn, company_id, participants, action)
    return stored


class DatabaseCardSource:
    """The business cards our SMP serves, read from PostgreSQL at each request."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def business_card(self, participant: smp.ParticipantId) -> smp.BusinessCard | None:
        published = await queries.published_card(self.pool, participant)
        if published is None:
            return None
        return smp.BusinessCard(published.participant, (entity_of(published.card),))
