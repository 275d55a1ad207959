"""The webhooks domain's SQL, behind typed functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import asyncpg

from gateway.webhooks.states import DeliveryState


async def add_operator_event(pool: asyncpg.Pool, kind: str, payload: str) -> None:
    """An event for every operator of this gateway (it concerns no company)."""
    await pool.execute("INSERT INTO events (company_id, kind, payload) VALUES (NULL, $1, $2::jsonb)", kind, payload)


# -- the delivery worker --------------------------------------------------------------------


class FanOut(NamedTuple):
    """What one fan-out batch did: events taken from the outbox, delivery rows created."""

    events: int
    deliveries: int


async def fan_out_events(pool: asyncpg.Pool, now: datetime, give_up_at: datetime, limit: int) -> FanOut:
    """Turn up to ``limit`` events of the outbox into one delivery row per matching webhook.

    The outbox rows are taken with ``FOR UPDATE SKIP LOCKED`` and deleted in the same statement
    that inserts the deliveries, so each event is fanned out once even with several workers, and an
    event committed after a later one is still taken (its row appears when it commits).
    """
    row = await pool.fetchrow(
        """WITH taken AS (
               DELETE FROM webhook_outbox
               WHERE event_id IN (SELECT event_id FROM webhook_outbox ORDER BY event_id
                                  FOR UPDATE SKIP LOCKED LIMIT $3)
               RETURNING event_id),
           matched AS (
               INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, give_up_at, created_at)
               SELECT w.id, e.id, $1, $2, $1
               FROM taken t
               JOIN events e ON e.id = t.event_id
               LEFT JOIN companies c ON c.id = e.company_id
               JOIN webhooks w
                 ON (w.company_id = c.id OR (w.operator_id IS NOT NULL AND w.operator_id = c.operator_id)
                     OR (e.company_id IS NULL AND w.operator_id IS NOT NULL))
               WHERE w.events IS NULL OR e.kind = ANY (w.events)
               ORDER BY e.id
               ON CONFLICT (webhook_id, event_id) DO NOTHING
               RETURNING 1)
           SELECT (SELECT count(*) FROM taken) AS events, (SELECT count(*) FROM matched) AS deliveries""",
        now,
        give_up_at,
        limit,
    )
    return FanOut(int(row["events"]), int(row["deliveries"]))


async def outbox_backlog(pool: asyncpg.Pool) -> int:
    """How many events wait to be fanned out."""
    return int(await pool.fetchval("SELECT count(*) FROM webhook_outbox"))


@dataclass(frozen=True)
class DueDelivery:
    """A delivery claimed for one attempt (``attempts`` counts this one)."""

    id: int
    webhook_id: uuid.UUID
    event_id: int
    attempts: int
    give_up_at: datetime


async def claim_due_deliveries(pool: asyncpg.Pool, now: datetime, limit: int) -> list[DueDelivery]:
    """Take up to ``limit`` pending deliveries that are due, for a minute, counting the attempt."""
    rows = await pool.fetch(
        """UPDATE webhook_deliveries d SET locked_until = $1 + interval '1 minute', attempts = d.attempts + 1
           WHERE d.id IN (SELECT id FROM webhook_deliveries
                          WHERE status = $3 AND next_attempt_at <= $1
                            AND (locked_until IS NULL OR locked_until < $1)
                          ORDER BY next_attempt_at FOR UPDATE SKIP LOCKED LIMIT $2)
           RETURNING d.id, d.webhook_id, d.event_id, d.attempts, d.give_up_at""",
        now,
        limit,
        DeliveryState.PENDING,
    )
    return [DueDelivery(**dict(r)) for r in rows]


@dataclass(frozen=True)
class Event:
    id: int
    company_id: uuid.UUID | None
    kind: str
    payload: str  # JSON
    created_at: datetime
    trace_context: str | None


async def event_trace_context(pool: asyncpg.Pool, event_id: int) -> str | None:
    """The trace the event was recorded in, to continue it in the delivery."""
    return await pool.fetchval(  # type: ignore[no-any-return]
        "SELECT trace_context FROM events WHERE id = $1", event_id
    )


async def get_event(pool: asyncpg.Pool, event_id: int) -> Event:
    row = await pool.fetchrow(
        "SELECT id, company_id, kind, payload, created_at, trace_context FROM events WHERE id = $1", event_id
    )
    return Event(**dict(row))


@dataclass(frozen=True)
class Target:
    destination: str
    secret: str


async def delivery_target(pool: asyncpg.Pool, webhook_id: uuid.UUID) -> Target | None:
    """Where and with which secret to deliver; None when the webhook was deleted meanwhile."""
    row = await pool.fetchrow("SELECT destination, secret FROM webhooks WHERE id = $1", webhook_id)
    return None if row is None else Target(row["destination"], row["secret"])


async def mark_delivered(pool: asyncpg.Pool, delivery_id: int, at: datetime, status: int) -> None:
    await pool.execute(
        "UPDATE webhook_deliveries SET status = $4, delivered_at = $2, last_status = $3, "
        "last_error = NULL, locked_until = NULL WHERE id = $1",
        delivery_id,
        at,
        status,
        DeliveryState.DELIVERED,
    )


async def mark_attempt_failed(
    pool: asyncpg.Pool,
    delivery_id: int,
    *,
    state: DeliveryState,
    next_attempt_at: datetime,
    last_status: int | None,
    error: str,
) -> None:
    """Record a failed attempt: tried again at ``next_attempt_at`` (pending) or given up (failed)."""
    await pool.execute(
        "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, last_status = $4, last_error = $5, "
        "locked_until = NULL WHERE id = $1",
        delivery_id,
        state,
        next_attempt_at,
        last_status,
        error,
    )


# -- registrations and deliveries, as the API shows them --------------------------------------


@dataclass(frozen=True)
class Owner:
    """Whose webhooks: a company's own, or an operator's vendor webhooks."""

    kind: Literal["company", "operator"]
    id: uuid.UUID | None

    @property
    def column(self) -> str:
        return "company_id" if self.kind == "company" else "operator_id"


@dataclass(frozen=True)
class Webhook:
    id: uuid.UUID
    company_id: uuid.UUID | None
    operator_id: uuid.UUID | None
    destination_type: str
    destination: str
    events: list[str] | None  # None: every event
    secret: str
    created_at: datetime
    updated_at: datetime


def _webhook(row: Any) -> Webhook:
    values = dict(row)
    values["events"] = list(values["events"]) if values["events"] is not None else None
    return Webhook(**values)


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: uuid.UUID
    event_id: int
    status: DeliveryState
    attempts: int
    next_attempt_at: datetime
    locked_until: datetime | None
    give_up_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _delivery(row: Any) -> Delivery:
    values = dict(row)
    values["status"] = DeliveryState(values["status"])
    return Delivery(**values)


async def create_webhook(
    pool: asyncpg.Pool,
    *,
    company_id: uuid.UUID | None,
    operator_id: uuid.UUID | None,
    destination_type: str,
    destination: str,
    events: list[str] | None,
    secret: str,
) -> Webhook:
    row = await pool.fetchrow(
        "INSERT INTO webhooks (id, company_id, operator_id, destination_type, destination, events, secret) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        uuid.uuid4(), company_id, operator_id, destination_type, destination, events, secret,
    )  # fmt: skip
    return _webhook(row)


async def list_webhooks(pool: asyncpg.Pool, owner: Owner) -> list[Webhook]:
    rows = await pool.fetch(
        f"SELECT * FROM webhooks WHERE {owner.column} = $1 ORDER BY created_at",  # noqa: S608
        owner.id,
    )
    return [_webhook(r) for r in rows]


async def own_webhook(pool: asyncpg.Pool, owner: Owner, webhook_id: uuid.UUID) -> Webhook | None:
    row = await pool.fetchrow(
        f"SELECT * FROM webhooks WHERE id = $2 AND {owner.column} = $1",  # noqa: S608
        owner.id,
        webhook_id,
    )
    return None if row is None else _webhook(row)


async def update_webhook(
    pool: asyncpg.Pool, webhook_id: uuid.UUID, destination: str, events: list[str] | None
) -> Webhook:
    row = await pool.fetchrow(
        "UPDATE webhooks SET destination = $2, events = $3, updated_at = now() WHERE id = $1 RETURNING *",
        webhook_id,
        destination,
        events,
    )
    return _webhook(row)


async def rotate_webhook_secret(pool: asyncpg.Pool, webhook_id: uuid.UUID, secret: str) -> Webhook:
    row = await pool.fetchrow(
        "UPDATE webhooks SET secret = $2, updated_at = now() WHERE id = $1 RETURNING *", webhook_id, secret
    )
    return _webhook(row)


async def delete_webhook(pool: asyncpg.Pool, webhook_id: uuid.UUID) -> None:
    await pool.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)


class DeliveryPage(NamedTuple):
    """One page of deliveries, newest first; ``next_before`` continues it (None: the last page)."""

    items: list[Delivery]
    next_before: int | None


async def list_deliveries(
    pool: asyncpg.Pool,
    owner: Owner,
    *,
    status: DeliveryState | None = None,
    webhook_id: uuid.UUID | None = None,
    before: int | None = None,
    limit: int = 200,
) -> DeliveryPage:
    """The owner's deliveries with ids below ``before``, newest first, optionally of one state or
    one webhook. Ids only grow, so paging by id neither repeats nor loses a row while new
    deliveries are added."""
    rows = await pool.fetch(
        f"""SELECT d.* FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
            WHERE w.{owner.column} = $1 AND ($2::text IS NULL OR d.status = $2)
              AND ($3::uuid IS NULL OR d.webhook_id = $3) AND ($4::bigint IS NULL OR d.id < $4)
            ORDER BY d.id DESC LIMIT $5""",  # noqa: S608
        owner.id,
        status,
        webhook_id,
        before,
        limit + 1,
    )
    items = [_delivery(r) for r in rows[:limit]]
    return DeliveryPage(items, items[-1].id if len(rows) > limit else None)


async def retry_delivery(
    pool: asyncpg.Pool, owner: Owner, delivery_id: int, now: datetime, give_up_at: datetime
) -> Delivery | None:
    """Start one of the owner's deliveries again, due now, with a fresh give-up time."""
    row = await pool.fetchrow(
        f"""UPDATE webhook_deliveries d SET status = $5, next_attempt_at = $3, give_up_at = $4,
                locked_until = NULL
            FROM webhooks w WHERE d.id = $2 AND w.id = d.webhook_id AND w.{owner.column} = $1
            RETURNING d.*""",  # noqa: S608
        owner.id,
        delivery_id,
        now,
        give_up_at,
        DeliveryState.PENDING,
    )
    return None if row is None else _delivery(row)


async def unfinished_deliveries(pool: asyncpg.Pool) -> dict[DeliveryState, int]:
    """How many deliveries are still to be tried and how many were given up, for metrics."""
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM webhook_deliveries WHERE status = ANY($1::text[]) GROUP BY status",
        [str(DeliveryState.PENDING), str(DeliveryState.FAILED)],
    )
    counts = {DeliveryState.PENDING: 0, DeliveryState.FAILED: 0}
    counts.update({DeliveryState(r["status"]): int(r["n"]) for r in rows})
    return counts
