"""This access point as a Peppol service provider: the company holding its SPID, which sends the
Message Level Statuses and the monthly reports and receives the MLS answering them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import structlog
from cryptography.x509.oid import NameOID

import smp
from gateway.directory import queries as directory_queries
from gateway.duties import queries
from gateway.duties.responses import spid_of_seat
from gateway.security.identity import ApIdentity

__all__ = ["Provider", "ensure_provider"]

log = structlog.get_logger("gateway.duties.provider")


@dataclass(frozen=True)
class Provider:
    """This access point as a Peppol service provider: the company holding its SPID."""

    company_id: uuid.UUID
    spid: str  # "0242:000001"
    country: str
    seat_id: str


def _subject(identity: ApIdentity, oid_name: str) -> str | None:
    attrs = identity.cert.subject.get_attributes_for_oid(getattr(NameOID, oid_name))
    return str(attrs[0].value) if attrs else None


async def ensure_provider(pool: asyncpg.Pool, identity: ApIdentity, registrar: smp.SmlRegistrar | None) -> Provider:
    """Register this access point's SPID as a participant receiving MLS (idempotent), and
    publish it in the SML when this gateway manages an SML zone."""
    spid = spid_of_seat(identity.seat_id)
    country = (_subject(identity, "COUNTRY_NAME") or "ZZ").upper()
    name = _subject(identity, "ORGANIZATION_NAME") or identity.seat_id
    participant = smp.ParticipantId.parse(spid)
    services = [(str(smp.MLS.document_type), str(p)) for p in smp.MLS.processes]
    async with pool.acquire() as conn:
        company_id = await directory_queries.add_company(conn, name, country, participant.local_id)
        await queries.mark_provider(conn, company_id)
        await directory_queries.add_participant(conn, company_id, participant.scheme, participant.value, services)
    if registrar is not None:
        try:
            await registrar.register(participant)
        except Exception as exc:  # the SML being down must not stop the gateway
            log.warning("spid_sml_registration_failed", spid=spid, error=type(exc).__name__)
    return Provider(company_id, spid, country, identity.seat_id)
