"""Registering companies, their participant ids and receiving profiles, and publishing the
participants in the SML: the I/O around the decisions in :mod:`gateway.directory.profiles`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
import structlog

import smp
from gateway.directory import queries
from gateway.directory.errors import NotFound, ParticipantTaken
from gateway.directory.profiles import (
    by_participant,
    document_types,
    profile_services,
    profile_view,
    publish_now,
    published_status,
    receiving_participant,
)
from gateway.directory.queries import Profile
from gateway.directory.states import ProfileStatus, check_move

__all__ = ["enrol_company", "publish", "publish_pending", "register_profiles", "remove_profile"]

log = structlog.get_logger("gateway.directory")


@asynccontextmanager
async def _transaction(db: asyncpg.Pool | asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A transaction of its own on a pooled connection, or one inside the caller's transaction."""
    if isinstance(db, asyncpg.Connection):
        async with db.transaction():
            yield db
    else:
        async with db.acquire() as conn, conn.transaction():
            yield conn


async def enrol_company(
    conn: asyncpg.Connection,
    *,
    name: str,
    country: str,
    business_id: str,
    participant: smp.ParticipantId,
    services: list[tuple[str, str]],
    operator_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A verified company (found again by country and business id) receiving ``services`` as
    ``participant``, linked to the operator if one is given."""
    company_id = await queries.add_company(conn, name, country, business_id)
    await queries.add_participant(conn, company_id, participant.scheme, participant.value, services)
    if operator_id is not None:
        await queries.link_operator(conn, company_id, operator_id)
    return company_id


async def register_profiles(
    pool: asyncpg.Pool | asyncpg.Connection,
    registrar: smp.SmlRegistrar | None,
    company_id: uuid.UUID,
    profiles: Sequence[str],
    version: str,
    participant_id: str | None,
) -> list[Profile]:
    """Add the company's receiving profiles (as the given participant id or its default one);
    a verified company's participant goes to the SML at once, the others' when verified. With a
    connection, all of it joins the caller's transaction."""
    company = await queries.company(pool, company_id)
    if company is None:
        raise NotFound("no such company")
    services = profile_services(profiles, version)
    participant = receiving_participant(company.country, company.business_id, participant_id)
    owner = await queries.participant_company(pool, participant)
    if owner is not None and owner != company_id:
        raise ParticipantTaken(f"{participant} belongs to another company")
    added = []
    async with _transaction(pool) as conn:
        await queries.add_participant(conn, company_id, participant.scheme, participant.value, services)
        for name in profiles:
            profile = await queries.add_profile(conn, company_id, name, version, participant)
            await queries.add_profile_event(conn, company_id, profile_view(profile))
            added.append(profile)
    if not publish_now(company):
        return added
    return await publish(pool, registrar, company_id, participant, added)


async def publish(
    pool: asyncpg.Pool | asyncpg.Connection,
    registrar: smp.SmlRegistrar | None,
    company_id: uuid.UUID,
    participant: smp.ParticipantId,
    profiles: Sequence[Profile],
) -> list[Profile]:
    """Register the participant in the SML and mark its pending profiles active (or failed)."""
    error = None
    if registrar is not None:
        try:
            await registrar.register(participant)
        except smp.DiscoveryError as exc:
            error = str(exc)
    updated = []
    async with _transaction(pool) as conn:
        for profile in profiles:
            status, reason = published_status(profile, error)
            new = await queries.set_profile_status(conn, profile.id, status, reason)
            await queries.add_profile_event(conn, company_id, profile_view(new))
            updated.append(new)
    status = ProfileStatus.ACTIVE if error is None else ProfileStatus.FAILED
    log.info("profiles_published", company=str(company_id), participant=str(participant), status=str(status))
    return updated


async def publish_pending(pool: asyncpg.Pool, registrar: smp.SmlRegistrar | None, company_id: uuid.UUID) -> None:
    """Publish the profiles that waited for the company's verification."""
    pending = await queries.company_profiles(pool, company_id, ProfileStatus.PENDING)
    for participant, profiles in by_participant(pending).items():
        await publish(pool, registrar, company_id, participant, profiles)


async def remove_profile(
    pool: asyncpg.Pool, registrar: smp.SmlRegistrar | None, company_id: uuid.UUID | None, profile_id: uuid.UUID
) -> Profile:
    """Stop receiving a profile's document types; the participant id's last profile gone, the
    participant leaves our SMP and the SML too."""
    profile = await queries.live_profile(pool, profile_id, company_id)
    if profile is None:
        raise NotFound("no such profile")
    check_move(profile.status, ProfileStatus.REMOVED)
    stopped = document_types(profile.profile, profile.version)
    async with pool.acquire() as conn, conn.transaction():
        removed = await queries.mark_profile_removed(conn, profile.id)
        await queries.remove_services(conn, profile.scheme, profile.value, stopped)
        await queries.add_profile_event(conn, profile.company_id, profile_view(removed))
        remaining = await queries.live_profile_count(conn, profile.scheme, profile.value)
        if not remaining:
            await queries.remove_participant(conn, profile.scheme, profile.value)
    if not remaining and registrar is not None:
        try:
            await registrar.unregister(profile.participant)
        except smp.DiscoveryError as exc:
            log.warning("sml_unregister_failed", error=str(exc))
    return removed
