"""The directory domain's SQL, behind typed functions."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

import smp
from gateway.directory.errors import CompanyExists, ProfileRegistered
from gateway.directory.states import IndexerAction, NotificationState, ProfileStatus

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def add_company(
    conn: asyncpg.Connection, name: str, country: str, business_id: str, *, verified: bool = True
) -> uuid.UUID:
    row = await conn.fetchrow(
        "INSERT INTO companies (id, name, country, business_id, verified) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (country, business_id) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        uuid.uuid4(),
        name,
        country.upper(),
        business_id,
        verified,
    )
    assert row is not None
    return row["id"]  # type: ignore[no-any-return]


async def add_participant(
    conn: asyncpg.Connection,
    company_id: uuid.UUID,
    scheme: str,
    value: str,
    services: list[tuple[str, str]],
) -> None:
    """Register a participant for a company with (document type, process) pairs it receives."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO participants (scheme, value, display, company_id) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (scheme, value) DO UPDATE SET company_id = EXCLUDED.company_id",
            scheme,
            value.lower(),
            value,
            company_id,
        )
        await conn.executemany(
            "INSERT INTO participant_services (scheme, value, document_type, process) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [(scheme, value.lower(), doc, proc) for doc, proc in services],
        )


async def participant_services(
    conn: asyncpg.Connection | asyncpg.Pool, scheme: str, value: str
) -> list[tuple[str, str]] | None:
    """(document type, process) pairs of a participant we serve; None if we do not serve it."""
    rows = await conn.fetch(
        "SELECT s.document_type, s.process FROM participants p "
        "LEFT JOIN participant_services s ON s.scheme = p.scheme AND s.value = p.value "
        "JOIN companies c ON c.id = p.company_id "
        "WHERE p.scheme = $1 AND p.value = $2 AND c.verified ORDER BY s.document_type, s.process",
        scheme,
        value.lower(),
    )
    if not rows:
        return None
    return [(r["document_type"], r["process"]) for r in rows if r["document_type"] is not None]


@dataclass(frozen=True)
class ReceivingCompany:
    id: uuid.UUID
    country: str
    inbound_validation: str  # "off", "reject" or "warn"


# -- companies -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Company:
    id: uuid.UUID
    name: str
    country: str
    business_id: str
    verified: bool
    outbound_validation: str  # "reject" or "warn"
    inbound_validation: str  # "off", "reject" or "warn"
    operator_id: uuid.UUID | None
    created_at: datetime
    duplicate_check: bool = True  # a resubmitted document is refused (off: intentional resends)
    positive_mls: str = "on_processing"  # or "on_acknowledge": when a positive MLS goes out


_COMPANY_COLUMNS = (
    "id, name, country, business_id, verified, outbound_validation, inbound_validation, operator_id, created_at,"
    " duplicate_check, positive_mls"
)


def _company(row: Any) -> Company:
    return Company(
        id=row["id"],
        name=row["name"],
        country=row["country"],
        business_id=row["business_id"],
        verified=row["verified"],
        outbound_validation=row["outbound_validation"],
        inbound_validation=row["inbound_validation"],
        operator_id=row["operator_id"],
        created_at=row["created_at"],
        duplicate_check=row["duplicate_check"],
        positive_mls=row["positive_mls"],
    )


async def create_company(
    conn: Executor, *, name: str, country: str, business_id: str, operator_id: uuid.UUID | None
) -> Company:
    """A new, not yet verified company; :class:`CompanyExists` for a taken business id."""
    try:
        row = await conn.fetchrow(
            "INSERT INTO companies (id, name, country, business_id, verified, operator_id) "  # noqa: S608
            f"VALUES ($1, $2, $3, $4, false, $5) RETURNING {_COMPANY_COLUMNS}",
            uuid.uuid4(), name, country, business_id, operator_id,
        )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise CompanyExists(f"a company with business id {business_id} in {country} exists") from None
    return _company(row)


async def company(conn: Executor, company_id: uuid.UUID | None) -> Company | None:
    row = await conn.fetchrow(f"SELECT {_COMPANY_COLUMNS} FROM companies WHERE id = $1", company_id)  # noqa: S608
    return None if row is None else _company(row)


async def companies_of_operator(conn: Executor, operator_id: uuid.UUID | None) -> list[Company]:
    rows = await conn.fetch(
        f"SELECT {_COMPANY_COLUMNS} FROM companies WHERE operator_id = $1 ORDER BY created_at",  # noqa: S608
        operator_id,
    )
    return [_company(r) for r in rows]


async def company_of_operator(conn: Executor, company_id: uuid.UUID, operator_id: uuid.UUID) -> bool:
    """Whether the company is linked to the operator."""
    linked = await conn.fetchval(
        "SELECT true FROM companies WHERE id = $1 AND operator_id = $2", company_id, operator_id
    )
    return bool(linked)


async def link_operator(conn: Executor, company_id: uuid.UUID, operator_id: uuid.UUID) -> None:
    await conn.execute("UPDATE companies SET operator_id = $2 WHERE id = $1", company_id, operator_id)


async def set_validation_policies(
    conn: Executor,
    company_id: uuid.UUID,
    *,
    outbound: str | None,
    inbound: str | None,
    duplicate_check: bool | None = None,
    positive_mls: str | None = None,
) -> Company | None:
    """Change the policies given (None keeps one); None when there is no such company."""
    row = await conn.fetchrow(
        f"""UPDATE companies SET outbound_validation = coalesce($2, outbound_validation),
                                 inbound_validation = coalesce($3, inbound_validation),
                                 duplicate_check = coalesce($4, duplicate_check),
                                 positive_mls = coalesce($5, positive_mls)
            WHERE id = $1 RETURNING {_COMPANY_COLUMNS}""",  # noqa: S608
        company_id,
        outbound,
        inbound,
        duplicate_check,
        positive_mls,
    )
    return None if row is None else _company(row)


async def verify_company(pool: asyncpg.Pool, company_id: uuid.UUID) -> Company | None:
    """Mark the company verified and tell its webhooks, together."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE companies SET verified = true WHERE id = $1 RETURNING {_COMPANY_COLUMNS}",  # noqa: S608
            company_id,
        )
        await conn.execute(
            "INSERT INTO events (company_id, kind, payload) VALUES ($1, 'company.verified', $2)",
            company_id,
            json.dumps({"company_id": str(company_id)}),
        )
    return None if row is None else _company(row)


# -- participants ----------------------------------------------------------------------------------


async def participant_company(conn: Executor, participant: smp.ParticipantId) -> uuid.UUID | None:
    """The company a participant id is registered for, if any."""
    owner: uuid.UUID | None = await conn.fetchval(
        "SELECT company_id FROM participants WHERE scheme = $1 AND value = $2",
        participant.scheme,
        participant.key,
    )
    return owner


async def served_participants(conn: Executor) -> list[smp.ParticipantId]:
    """Every participant id registered here, as registered."""
    rows = await conn.fetch("SELECT scheme, display FROM participants")
    return [smp.ParticipantId.of(r["scheme"], r["display"]) for r in rows]


async def remove_services(conn: Executor, scheme: str, value: str, document_types: list[str]) -> None:
    """Stop receiving these document types as the participant."""
    await conn.execute(
        "DELETE FROM participant_services WHERE scheme = $1 AND value = $2 AND document_type = ANY($3::text[])",
        scheme,
        value.lower(),
        document_types,
    )


async def remove_participant(conn: Executor, scheme: str, value: str) -> None:
    await conn.execute("DELETE FROM participants WHERE scheme = $1 AND value = $2", scheme, value.lower())


# -- receiving profiles ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """A receiving profile a company registered for one of its participant ids."""

    id: uuid.UUID
    company_id: uuid.UUID
    network: str
    profile: str
    version: str
    scheme: str
    value: str
    status: ProfileStatus
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    sml_attempts: int = 0  # failed SML registrations of its participant since the last success
    sml_retry_at: datetime | None = None  # when a pending profile's registration is tried again

    @property
    def participant(self) -> smp.ParticipantId:
        return smp.ParticipantId.of(self.scheme, self.value)


_PROFILE_COLUMNS = (
    "id, company_id, network, profile, version, scheme, value, status, status_reason, created_at, updated_at, "
    "sml_attempts, sml_retry_at"
)


def _profile(row: Any) -> Profile:
    return Profile(
        id=row["id"],
        company_id=row["company_id"],
        network=row["network"],
        profile=row["profile"],
        version=row["version"],
        scheme=row["scheme"],
        value=row["value"],
        status=ProfileStatus(row["status"]),
        status_reason=row["status_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sml_attempts=row["sml_attempts"],
        sml_retry_at=row["sml_retry_at"],
    )


async def add_profile(
    conn: Executor, company_id: uuid.UUID, profile: str, version: str, participant: smp.ParticipantId
) -> Profile:
    """A new pending profile; :class:`ProfileRegistered` when the company has it already."""
    try:
        row = await conn.fetchrow(
            "INSERT INTO company_profiles (id, company_id, profile, version, scheme, value, status) "  # noqa: S608
            f"VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_PROFILE_COLUMNS}",
            uuid.uuid4(), company_id, profile, version, participant.scheme, participant.value,
            ProfileStatus.PENDING.value,
        )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise ProfileRegistered(f"profile {profile} {version} is already registered") from None
    return _profile(row)


async def set_sml_outcome(
    conn: Executor,
    profile_id: uuid.UUID,
    status: ProfileStatus,
    reason: str | None,
    *,
    attempts: int,
    retry_at: datetime | None,
) -> Profile:
    """The profile after an SML registration of its participant: its status and reason, how
    many registrations failed in a row and when to try again (None: not again)."""
    row = await conn.fetchrow(
        "UPDATE company_profiles SET status = $2, status_reason = $3, sml_attempts = $4, sml_retry_at = $5, "  # noqa: S608
        f"updated_at = now() WHERE id = $1 RETURNING {_PROFILE_COLUMNS}",
        profile_id, status.value, reason, attempts, retry_at,
    )  # fmt: skip
    assert row is not None
    return _profile(row)


async def due_sml_registrations(conn: Executor, now: datetime, limit: int = 100) -> list[Profile]:
    """Pending profiles of verified companies whose SML registration is due again."""
    rows = await conn.fetch(
        f"SELECT {', '.join('p.' + c.strip() for c in _PROFILE_COLUMNS.split(','))} "  # noqa: S608
        "FROM company_profiles p JOIN companies c ON c.id = p.company_id "
        "WHERE p.status = $1 AND c.verified AND p.sml_retry_at <= $2 ORDER BY p.sml_retry_at LIMIT $3",
        ProfileStatus.PENDING.value,
        now,
        limit,
    )
    return [_profile(r) for r in rows]


@dataclass(frozen=True)
class SmlRemoval:
    """A participant that left our SMP whose SML record is still to be deleted."""

    participant: smp.ParticipantId
    attempts: int
    retry_at: datetime
    last_error: str | None


async def queue_sml_removal(
    conn: Executor, participant: smp.ParticipantId, error: str, retry_at: datetime
) -> SmlRemoval:
    """Remember (or count once more) a failed deletion of the participant's SML record."""
    row = await conn.fetchrow(
        "INSERT INTO sml_removals (scheme, value, attempts, retry_at, last_error) VALUES ($1, $2, 1, $3, $4) "
        "ON CONFLICT (scheme, value) DO UPDATE SET attempts = sml_removals.attempts + 1, "
        "retry_at = EXCLUDED.retry_at, last_error = EXCLUDED.last_error "
        "RETURNING attempts, retry_at, last_error",
        participant.scheme,
        participant.value,
        retry_at,
        error,
    )
    assert row is not None
    return SmlRemoval(participant, row["attempts"], row["retry_at"], row["last_error"])


async def due_sml_removals(conn: Executor, now: datetime, limit: int = 100) -> list[SmlRemoval]:
    rows = await conn.fetch(
        "SELECT scheme, value, attempts, retry_at, last_error FROM sml_removals "
        "WHERE retry_at <= $1 ORDER BY retry_at LIMIT $2",
        now,
        limit,
    )
    return [
        SmlRemoval(smp.ParticipantId.of(r["scheme"], r["value"]), r["attempts"], r["retry_at"], r["last_error"])
        for r in rows
    ]


async def drop_sml_removal(conn: Executor, participant: smp.ParticipantId) -> None:
    """The participant's SML record is deleted (or wanted again): nothing left to remove."""
    await conn.execute(
        "DELETE FROM sml_removals WHERE scheme = $1 AND lower(value) = $2", participant.scheme, participant.key
    )


async def mark_profile_removed(conn: Executor, profile_id: uuid.UUID) -> Profile:
    """The profile removed (its earlier status reason kept, as history)."""
    row = await conn.fetchrow(
        f"UPDATE company_profiles SET status = $2, updated_at = now() WHERE id = $1 RETURNING {_PROFILE_COLUMNS}",  # noqa: S608
        profile_id,
        ProfileStatus.REMOVED.value,
    )
    assert row is not None
    return _profile(row)


async def add_profile_event(conn: Executor, company_id: uuid.UUID, payload: dict[str, Any]) -> None:
    """Tell the company's webhooks that a profile's status changed."""
    await conn.execute(
        "INSERT INTO events (company_id, kind, payload) VALUES ($1, 'profile.status_changed', $2)",
        company_id,
        json.dumps(payload),
    )


async def company_profiles(
    conn: Executor, company_id: uuid.UUID | None, status: ProfileStatus | None = None
) -> list[Profile]:
    """The company's profiles (only those in ``status`` if given), oldest first."""
    rows = await conn.fetch(
        f"SELECT {_PROFILE_COLUMNS} FROM company_profiles "  # noqa: S608
        "WHERE company_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY created_at",
        company_id,
        None if status is None else status.value,
    )
    return [_profile(r) for r in rows]


async def live_profile(conn: Executor, profile_id: uuid.UUID, company_id: uuid.UUID | None) -> Profile | None:
    """The company's profile unless removed."""
    row = await conn.fetchrow(
        f"SELECT {_PROFILE_COLUMNS} FROM company_profiles "  # noqa: S608
        "WHERE id = $1 AND company_id = $2 AND status <> $3",
        profile_id,
        company_id,
        ProfileStatus.REMOVED.value,
    )
    return None if row is None else _profile(row)


async def live_profile_count(conn: Executor, scheme: str, value: str) -> int:
    """How many profiles of any company still use the participant id."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM company_profiles WHERE scheme = $1 AND value = $2 AND status <> $3",
        scheme,
        value,
        ProfileStatus.REMOVED.value,
    )
    return count


async def company_verified(conn: asyncpg.Connection | asyncpg.Pool, company_id: uuid.UUID) -> bool:
    """Whether an operator verified the company (only verified companies send and receive)."""
    return bool(await conn.fetchval("SELECT verified FROM companies WHERE id = $1", company_id))


@dataclass(frozen=True)
class SendingCompany:
    """What sending a document checks of the company, read in one statement: verified, its
    duplicate check and outbound validation policy, and its own participants (``None`` when it
    has more than :data:`OWN_PARTICIPANTS_READ`: ask :func:`owns_participant`)."""

    verified: bool
    duplicate_check: bool
    outbound_validation: str | None
    participants: frozenset[tuple[str, str]] | None

    def owns(self, scheme: str, value: str) -> bool | None:
        """Whether the participant is the company's own; None when not read here."""
        return None if self.participants is None else (scheme, value) in self.participants


OWN_PARTICIPANTS_READ = 32
_SENDING_COMPANY = """
    SELECT c.verified, c.duplicate_check, c.outbound_validation, own.schemes, own.own_values, own.n
    FROM companies c
    LEFT JOIN LATERAL (
        SELECT array_agg(p.scheme) AS schemes, array_agg(p.value) AS own_values, count(*) AS n
        FROM (SELECT scheme, value FROM participants WHERE company_id = c.id LIMIT $2 + 1) p) own ON true
    WHERE c.id = $1"""


async def sending_company(conn: asyncpg.Connection | asyncpg.Pool, company_id: uuid.UUID) -> SendingCompany | None:
    """The company as sending a document sees it; None when there is no such company."""
    row = await conn.fetchrow(_SENDING_COMPANY, company_id, OWN_PARTICIPANTS_READ)
    if row is None:
        return None
    participants = None
    if row["n"] <= OWN_PARTICIPANTS_READ:
        participants = frozenset(zip(row["schemes"] or (), row["own_values"] or (), strict=True))
    return SendingCompany(bool(row["verified"]), bool(row["duplicate_check"]), row["outbound_validation"], participants)


async def outbound_validation(conn: asyncpg.Connection | asyncpg.Pool, company_id: uuid.UUID) -> str | None:
    """The company's policy for documents it sends that break rules: "reject" or "warn"."""
    policy = await conn.fetchval("SELECT outbound_validation FROM companies WHERE id = $1", company_id)
    return None if policy is None else str(policy)


async def companies_with_policy(conn: asyncpg.Connection | asyncpg.Pool, policy: str, value: str) -> int:
    """How many companies have ``policy`` (outbound_validation or inbound_validation) = ``value``."""
    if policy not in ("outbound_validation", "inbound_validation"):
        raise ValueError(f"unknown policy {policy!r}")
    return int(await conn.fetchval(f"SELECT count(*) FROM companies WHERE {policy} = $1", value))  # noqa: S608


async def duplicate_check(conn: asyncpg.Connection | asyncpg.Pool, company_id: uuid.UUID) -> bool:
    """Whether the company's resubmitted documents are refused (the default) or sent again."""
    return bool(await conn.fetchval("SELECT duplicate_check FROM companies WHERE id = $1", company_id))


async def owns_participant(
    conn: asyncpg.Connection | asyncpg.Pool, company_id: uuid.UUID, scheme: str, value: str
) -> bool:
    """Whether the participant is the company's own (a company sends only as itself)."""
    found = await conn.fetchval(
        "SELECT true FROM participants WHERE company_id = $1 AND scheme = $2 AND value = $3",
        company_id,
        scheme,
        value,
    )
    return bool(found)


async def operator_companies(conn: asyncpg.Connection | asyncpg.Pool, operator_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM companies WHERE operator_id = $1", operator_id)
    return [r["id"] for r in rows]


# -- Peppol Directory: business cards and the indexer's notifications -----------------------------


@dataclass(frozen=True)
class StoredCard:
    company_id: uuid.UUID
    publish: bool
    card: dict[str, Any]  # the entity's fields, as the API names them
    updated_at: datetime


def _stored_card(row: Any) -> StoredCard:
    return StoredCard(row["company_id"], row["publish"], json.loads(row["card"]), row["updated_at"])


async def business_card(conn: Executor, company_id: uuid.UUID) -> StoredCard | None:
    row = await conn.fetchrow(
        "SELECT company_id, publish, card, updated_at FROM business_cards WHERE company_id = $1", company_id
    )
    return None if row is None else _stored_card(row)


async def save_business_card(
    conn: asyncpg.Connection, company_id: uuid.UUID, *, publish: bool, card: dict[str, Any]
) -> tuple[StoredCard, bool]:
    """Store a company's card; also says whether it was published before the change."""
    before = await conn.fetchval("SELECT publish FROM business_cards WHERE company_id = $1 FOR UPDATE", company_id)
    row = await conn.fetchrow(
        "INSERT INTO business_cards (company_id, publish, card) VALUES ($1, $2, $3::jsonb) "
        "ON CONFLICT (company_id) DO UPDATE SET publish = EXCLUDED.publish, card = EXCLUDED.card, "
        "updated_at = now() RETURNING company_id, publish, card, updated_at",
        company_id,
        publish,
        json.dumps(card),
    )
    assert row is not None
    return _stored_card(row), bool(before)


@dataclass(frozen=True)
class PublishedCard:
    participant: smp.ParticipantId
    card: dict[str, Any]


async def published_card(conn: Executor, participant: smp.ParticipantId) -> PublishedCard | None:
    """The card our SMP serves for a participant: its company is verified and opted in."""
    row = await conn.fetchrow(
        "SELECT p.scheme, p.display, b.card FROM participants p "
        "JOIN companies c ON c.id = p.company_id "
        "JOIN business_cards b ON b.company_id = c.id "
        "WHERE p.scheme = $1 AND p.value = $2 AND c.verified AND b.publish",
        participant.scheme,
        participant.key,
    )
    if row is None:
        return None
    return PublishedCard(smp.ParticipantId.of(row["scheme"], row["display"]), json.loads(row["card"]))


async def company_participants(conn: Executor, company_id: uuid.UUID) -> list[smp.ParticipantId]:
    rows = await conn.fetch(
        "SELECT scheme, display FROM participants WHERE company_id = $1 ORDER BY created_at, value", company_id
    )
    return [smp.ParticipantId.of(r["scheme"], r["display"]) for r in rows]


@dataclass(frozen=True)
class IndexerNotification:
    id: int
    participant: smp.ParticipantId
    company_id: uuid.UUID | None
    action: IndexerAction
    state: NotificationState
    generation: int
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    queued_at: datetime
    sent_at: datetime | None
    updated_at: datetime


_NOTIFICATION_COLUMNS = (
    "id, scheme, value, company_id, action, state, generation, attempts, next_attempt_at, last_status, "
    "last_error, queued_at, sent_at, updated_at"
)


def _notification(row: Any) -> IndexerNotification:
    return IndexerNotification(
        row["id"], smp.ParticipantId.of(row["scheme"], row["value"]), row["company_id"],
        IndexerAction(row["action"]), NotificationState(row["state"]), row["generation"], row["attempts"],
        row["next_attempt_at"], row["last_status"], row["last_error"], row["queued_at"], row["sent_at"],
        row["updated_at"],
    )  # fmt: skip


async def queue_indexer_notifications(
    conn: Executor, company_id: uuid.UUID, participants: list[smp.ParticipantId], action: IndexerAction
) -> None:
    """The indexer is to be told ``action`` for each participant, now: replaces whatever was
    waiting for it (a newer change wins) and starts a fresh retry window."""
    await conn.executemany(
        "INSERT INTO directory_notifications (scheme, value, company_id, action, state, next_attempt_at) "
        "VALUES ($1, $2, $3, $4, $5, now()) "
        "ON CONFLICT (scheme, value) DO UPDATE SET company_id = EXCLUDED.company_id, action = EXCLUDED.action, "
        "state = EXCLUDED.state, generation = directory_notifications.generation + 1, attempts = 0, "
        "next_attempt_at = now(), last_error = NULL, last_status = NULL, queued_at = now(), updated_at = now()",
        [(p.scheme, p.value, company_id, str(action), str(NotificationState.PENDING)) for p in participants],
    )


async def claim_indexer_notifications(
    conn: Executor, *, lease_seconds: float, limit: int = 20
) -> list[IndexerNotification]:
    """Due notifications, leased (their next attempt moved ``lease_seconds`` ahead) so that
    another process does not send them at the same time."""
    rows = await conn.fetch(
        f"UPDATE directory_notifications SET next_attempt_at = now() + make_interval(secs => $1) "  # noqa: S608
        f"WHERE id IN (SELECT id FROM directory_notifications WHERE state = $2 AND next_attempt_at <= now() "
        f"ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {_NOTIFICATION_COLUMNS}",
        lease_seconds,
        str(NotificationState.PENDING),
        limit,
    )
    return [_notification(r) for r in rows]


async def record_indexer_outcome(
    conn: Executor,
    notification_id: int,
    generation: int,
    *,
    state: NotificationState,
    status: int | None,
    error: str | None,
    retry_in: float | None,
) -> bool:
    """Record one attempt; ignored (False) when a newer change replaced the notification."""
    done = await conn.fetchval(
        "UPDATE directory_notifications SET state = $3, attempts = attempts + 1, last_status = $4, "
        "last_error = $5, next_attempt_at = CASE WHEN $6::float8 IS NULL THEN NULL "
        "ELSE now() + make_interval(secs => $6::float8) END, "
        "sent_at = CASE WHEN $3 = $7 THEN now() ELSE sent_at END, updated_at = now() "
        "WHERE id = $1 AND generation = $2 RETURNING id",
        notification_id,
        generation,
        str(state),
        status,
        error,
        retry_in,
        str(NotificationState.SENT),
    )
    return done is not None


async def indexer_notifications(
    conn: Executor,
    *,
    company_id: uuid.UUID | None = None,
    operator_id: uuid.UUID | None = None,
    state: NotificationState | None = None,
    limit: int = 200,
) -> list[IndexerNotification]:
    """Newest first: one company's, or those of an operator's companies."""
    rows = await conn.fetch(
        f"SELECT {_NOTIFICATION_COLUMNS} FROM directory_notifications n "  # noqa: S608
        f"WHERE ($1::uuid IS NULL OR n.company_id = $1) "
        f"AND ($2::uuid IS NULL OR n.company_id IN (SELECT id FROM companies WHERE operator_id = $2)) "
        f"AND ($3::text IS NULL OR n.state = $3) ORDER BY n.updated_at DESC, n.id DESC LIMIT $4",
        company_id,
        operator_id,
        None if state is None else str(state),
        limit,
    )
    return [_notification(r) for r in rows]


async def retry_indexer_notification(
    conn: Executor, notification_id: int, operator_id: uuid.UUID
) -> IndexerNotification | None:
    """Due again at once with a fresh retry window (an operator's own companies only)."""
    row = await conn.fetchrow(
        f"UPDATE directory_notifications SET state = $3, attempts = 0, next_attempt_at = now(), "  # noqa: S608
        f"queued_at = now(), generation = generation + 1, updated_at = now() "
        f"WHERE id = $1 AND company_id IN (SELECT id FROM companies WHERE operator_id = $2) "
        f"RETURNING {_NOTIFICATION_COLUMNS}",
        notification_id,
        operator_id,
        str(NotificationState.PENDING),
    )
    return None if row is None else _notification(row)


async def company_country(db: asyncpg.Pool | asyncpg.Connection, company_id: uuid.UUID) -> str | None:
    """The country a company is registered in (ISO 3166-1 alpha-2), None if there is no such company."""
    return await db.fetchval("SELECT country FROM companies WHERE id = $1", company_id)  # type: ignore[no-any-return]


async def participant_country(db: asyncpg.Pool | asyncpg.Connection, scheme: str, value: str) -> str | None:
    """The registered country of the company that has this participant identifier, if any."""
    return await db.fetchval(  # type: ignore[no-any-return]
        "SELECT c.country FROM participants p JOIN companies c ON c.id = p.company_id"
        " WHERE p.scheme = $1 AND p.value = $2",
        scheme,
        value.lower(),
    )
