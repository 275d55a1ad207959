"""Registering companies, their participant ids and receiving profiles, and publishing the
participants in the SML: the I/O around the decisions in :mod:`gateway.directory.profiles`."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

import smp
from gateway.directory import queries
from gateway.directory.errors import NotFound, ParticipantTaken, ProfileRegistered
from gateway.directory.profiles import (
    by_participant,
    document_types,
    profile_services,
    profile_view,
    publish_now,
    published_status,
    receiving_participant,
    sml_retry_delay,
)
from gateway.directory.queries import Profile
from gateway.directory.states import ProfileStatus, check_move
from gateway.webhooks import queries as webhooks_queries

__all__ = ["SmlRetry", "enrol_company", "publish", "publish_pending", "register_profiles", "remove_profile"]

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
    *,
    existing_ok: bool = False,
) -> list[Profile]:
    """Add the company's receiving profiles (as the given participant id or its default one);
    a verified company's participant goes to the SML at once, the others' when verified.
    ``existing_ok`` skips profiles the company has already (and publishes those still pending).
    With a connection, all of it joins the caller's transaction."""
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
            try:
                async with conn.transaction():
                    profile = await queries.add_profile(conn, company_id, name, version, participant)
            except ProfileRegistered:
                if not existing_ok:
                    raise
                continue
            await queries.add_profile_event(conn, company_id, profile_view(profile))
            added.append(profile)
    if existing_ok:
        added = [
            p
            for p in await queries.company_profiles(pool, company_id, ProfileStatus.PENDING)
            if p.value.lower() == participant.key
        ]
    if not publish_now(company) or not added:
        return added
    return await publish(pool, registrar, company_id, participant, added)


async def publish(
    pool: asyncpg.Pool | asyncpg.Connection,
    registrar: smp.SmlRegistrar | None,
    company_id: uuid.UUID,
    participant: smp.ParticipantId,
    profiles: Sequence[Profile],
    *,
    now: datetime | None = None,
) -> list[Profile]:
    """Register the participant in the SML and mark its pending profiles active. A refusal or
    an SML that does not answer keeps them pending with the SML's text, tries again later with
    backoff, and tells the operators; only a refusal decided before asking the SML (a removed
    identifier scheme) makes them failed."""
    now = now or datetime.now(UTC)
    error, permanent = None, False
    if registrar is not None:
        await queries.drop_sml_removal(pool, participant)  # wanted again: no removal left to retry
        try:
            await registrar.register(participant)
        except smp.DiscoveryError as exc:
            error, permanent = str(exc), bool(getattr(exc, "permanent", False))
    attempts = 1 + max((p.sml_attempts for p in profiles), default=0) if error else 0
    retry_at = now + timedelta(seconds=sml_retry_delay(attempts)) if error and not permanent else None
    updated = []
    news = False
    async with _transaction(pool) as conn:
        for profile in profiles:
            status, reason = published_status(profile, error, permanent=permanent)
            new = await queries.set_sml_outcome(conn, profile.id, status, reason, attempts=attempts, retry_at=retry_at)
            if (new.status, new.status_reason) != (profile.status, profile.status_reason):
                await queries.add_profile_event(conn, company_id, profile_view(new))
                news = True
            updated.append(new)
    if error is None:
        log.info("profiles_published", company=str(company_id), participant=str(participant))
        return updated
    log.warning(
        "sml_registration_failed", company=str(company_id), participant=str(participant), error=error,
        attempts=attempts, retry_at=retry_at.isoformat() if retry_at else None,
    )  # fmt: skip
    if news:  # once per new reason, not at every retry
        facts = {
            "company_id": str(company_id), "participant_id": str(participant), "error": error,
            "attempts": attempts, "retry_at": retry_at.isoformat() if retry_at else None,
            "profiles": [str(p.id) for p in updated],
        }  # fmt: skip
        await webhooks_queries.add_operator_event(pool, "sml.registration_failed", json.dumps(facts))
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
        await unregister(pool, registrar, profile.participant)
    return removed


async def unregister(
    pool: asyncpg.Pool,
    registrar: smp.SmlRegistrar,
    participant: smp.ParticipantId,
    *,
    attempts: int = 0,
    now: datetime | None = None,
) -> bool:
    """Delete the participant's SML record; when that fails, remember it (tried again with
    backoff) and tell the operators. Whether it is deleted."""
    try:
        await registrar.unregister(participant)
    except smp.DiscoveryError as exc:
        retry_at = (now or datetime.now(UTC)) + timedelta(seconds=sml_retry_delay(attempts + 1))
        async with pool.acquire() as conn:
            queued = await queries.queue_sml_removal(conn, participant, str(exc), retry_at)
        log.warning("sml_unregister_failed", participant=str(participant), error=str(exc), attempts=queued.attempts)
        if queued.attempts == 1:
            facts = {"participant_id": str(participant), "error": str(exc), "retry_at": retry_at.isoformat()}
            await webhooks_queries.add_operator_event(pool, "sml.removal_failed", json.dumps(facts))
        return False
    async with pool.acquire() as conn:
        await queries.drop_sml_removal(conn, participant)
    log.info("sml_unregistered", participant=str(participant))
    return True


class SmlRetry:
    """The background step that tries failed SML registrations and removals again when due."""

    def __init__(
        self, pool: asyncpg.Pool, registrar: smp.SmlRegistrar, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.pool = pool
        self.registrar = registrar
        self.clock = clock or (lambda: datetime.now(UTC))

    async def step(self) -> bool:
        """One round (for ``run_loop``): whether anything was due."""
        return await self.run_once(self.clock())

    async def run_once(self, now: datetime) -> bool:
        due = await queries.due_sml_registrations(self.pool, now)
        groups: dict[tuple[uuid.UUID, str], list[Profile]] = {}
        for profile in due:
            groups.setdefault((profile.company_id, profile.value.lower()), []).append(profile)
        for (company_id, _), profiles in groups.items():
            await publish(self.pool, self.registrar, company_id, profiles[0].participant, profiles, now=now)
        removals = await queries.due_sml_removals(self.pool, now)
        for removal in removals:
            await unregister(self.pool, self.registrar, removal.participant, attempts=removal.attempts, now=now)
        return bool(due or removals)
