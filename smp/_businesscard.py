"""Peppol Directory business cards (format v3, namespace ``.../businesscard/20180621/``).

An SMP that takes part in the Peppol Directory serves one card per participant at
``/businesscard/{participant}``; the Directory fetches it after the SMP told its indexer that the
card changed. Built here for our SMP and parsed here for the cards of other SMPs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from lxml import etree

from smp._identifiers import IdentifierError, ParticipantId
from smp._metadata import MetadataError, parse_xml

__all__ = [
    "BUSINESS_CARD_NS",
    "BusinessCard",
    "BusinessEntity",
    "Contact",
    "EntityIdentifier",
    "EntityName",
    "build_business_card",
    "parse_business_card",
]

BUSINESS_CARD_NS = "http://www.peppol.eu/schema/pd/businesscard/20180621/"


@dataclass(frozen=True)
class EntityName:
    name: str
    language: str | None = None  # ISO 639-1


@dataclass(frozen=True)
class EntityIdentifier:
    """A further identifier of the entity (VAT number, organisation number, ...)."""

    scheme: str
    value: str


@dataclass(frozen=True)
class Contact:
    type: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class BusinessEntity:
    names: tuple[EntityName, ...]
    country: str  # ISO 3166 alpha-2
    geographical_information: str | None = None
    identifiers: tuple[EntityIdentifier, ...] = ()
    websites: tuple[str, ...] = ()
    contacts: tuple[Contact, ...] = ()
    additional_information: str | None = None
    registration_date: date | None = None


@dataclass(frozen=True)
class BusinessCard:
    participant: ParticipantId
    entities: tuple[BusinessEntity, ...] = field(default=())


def _q(local: str) -> str:
    return f"{{{BUSINESS_CARD_NS}}}{local}"


def _text(parent: etree._Element, tag: str, value: str | None) -> None:
    if value:
        etree.SubElement(parent, _q(tag)).text = value


def build_business_card(card: BusinessCard) -> bytes:
    """The card as the SMP serves it (elements in the order the schema prescribes)."""
    root = etree.Element(_q("BusinessCard"), nsmap={None: BUSINESS_CARD_NS})
    pid = etree.SubElement(root, _q("ParticipantIdentifier"), {"scheme": card.participant.scheme})
    pid.text = card.participant.value
    for entity in card.entities:
        attrs = {"registrationDate": entity.registration_date.isoformat()} if entity.registration_date else {}
        el = etree.SubElement(root, _q("BusinessEntity"), attrs)
        for name in entity.names:
            etree.SubElement(el, _q("Name"), {"language": name.language} if name.language else {}).text = name.name
        etree.SubElement(el, _q("CountryCode")).text = entity.country
        _text(el, "GeographicalInformation", entity.geographical_information)
        for identifier in entity.identifiers:
            etree.SubElement(el, _q("Identifier"), {"scheme": identifier.scheme}).text = identifier.value
        for website in entity.websites:
            etree.SubElement(el, _q("WebsiteURI")).text = website
        for contact in entity.contacts:
            c = etree.SubElement(el, _q("Contact"))
            _text(c, "Type", contact.type)
            _text(c, "Name", contact.name)
            _text(c, "PhoneNumber", contact.phone)
            _text(c, "Email", contact.email)
        _text(el, "AdditionalInformation", entity.additional_information)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _strip(text: str | None) -> str | None:
    return text.strip() or None if text else None


def _entity(el: etree._Element) -> BusinessEntity:
    names = tuple(
        EntityName((n.text or "").strip(), n.get("language") or None)
        for n in el.iterfind(_q("Name"))
        if (n.text or "").strip()
    )
    if not names:
        raise MetadataError("a BusinessEntity has no Name")
    raw_date = el.get("registrationDate")
    try:
        registered = date.fromisoformat(raw_date[:10]) if raw_date else None
    except ValueError:
        raise MetadataError(f"registrationDate {raw_date!r} is not a date") from None
    return BusinessEntity(
        names=names,
        country=(el.findtext(_q("CountryCode")) or "").strip().upper(),
        geographical_information=_strip(el.findtext(_q("GeographicalInformation"))),
        identifiers=tuple(
            EntityIdentifier(i.get("scheme", ""), (i.text or "").strip()) for i in el.iterfind(_q("Identifier"))
        ),
        websites=tuple((w.text or "").strip() for w in el.iterfind(_q("WebsiteURI")) if (w.text or "").strip()),
        contacts=tuple(
            Contact(
                _strip(c.findtext(_q("Type"))),
                _strip(c.findtext(_q("Name"))),
                _strip(c.findtext(_q("PhoneNumber"))),
                _strip(c.findtext(_q("Email"))),
            )
            for c in el.iterfind(_q("Contact"))
        ),
        additional_information=_strip(el.findtext(_q("AdditionalInformation"))),
        registration_date=registered,
    )


def parse_business_card(data: bytes) -> BusinessCard:
    """Read a business card (v3); :class:`MetadataError` when it is not one."""
    root = parse_xml(data)
    if root.tag != _q("BusinessCard"):
        raise MetadataError(f"expected a v3 BusinessCard, got {root.tag}")
    pid = root.find(_q("ParticipantIdentifier"))
    if pid is None:
        raise MetadataError("the BusinessCard has no ParticipantIdentifier")
    try:
        participant = ParticipantId.of(pid.get("scheme", ""), (pid.text or "").strip())
    except IdentifierError as exc:
        raise MetadataError(f"BusinessCard: {exc}") from None
    return BusinessCard(participant, tuple(_entity(e) for e in root.iterfind(_q("BusinessEntity"))))
