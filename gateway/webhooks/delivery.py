"""Webhook delivery from the events outbox.

Events are rows written in the same transaction as the change they describe. A fan-out step
turns each new event into one delivery row per matching webhook (a company's own webhooks, and
vendor webhooks of the operator the company is linked to), moving a cursor in the same
transaction, so no event is lost or fanned out twice. Deliveries are POSTed as signed JSON; a
200, 201 or 204 within 5 seconds ends them, anything else is tried again every hour for 24
hours, then the delivery is marked failed (and can be retried through the API). A receiver may
see an event twice after a crash: the event id is the idempotency key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import structlog

from gateway.core import tracing
from gateway.core.lifecycle import run_loop

__all__ = ["WebhookWorker", "sign", "verify_signature"]

log = structlog.get_logger("gateway.webhooks.delivery")

SUCCESS = {200, 201, 204}
RETRY_EVERY = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=24)
TIMEOUT = 5.0


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Gateway-Signature`` header value for a body sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, body: bytes, header: str, now: float | None = None, tolerance: int = 300) -> bool:
    """What a receiver does: recompute the HMAC and refuse old timestamps (replays)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookWorker:
    """Fans out events and delivers them; ``clock`` is injectable for the retry schedule."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_interval: float = 1.0,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.poll_interval = poll_interval
        self._session: aiohttp.ClientSession | None = None

    async def fan_out(self) -> int:
        """Create deliveries for events not seen yet; returns how many."""
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            cursor = await conn.fetchval("SELECT last_event_id FROM webhook_cursor FOR UPDATE")
            last = await conn.fetchval("SELECT coalesce(max(id), $1) FROM events WHERE id > $1", cursor)
            if last == cursor:
                return 0
            created = await conn.fetchval(
                """WITH matched AS (
                       INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, give_up_at, created_at)
                       SELECT w.id, e.id, $3, $4, $3
                       FROM events e
                       LEFT JOIN companies c ON c.id = e.company_id
                       JOIN webhooks w
                         ON (w.company_id = c.id OR (w.operator_id IS NOT NULL AND w.operator_id = c.operator_id)
                             OR (e.company_id IS NULL AND w.operator_id IS NOT NULL))
                       WHERE e.id > $1 AND e.id <= $2 AND (w.events IS NULL OR e.kind = ANY (w.events))
                       ON CONFLICT (webhook_id, event_id) DO NOTHING
                       RETURNING 1)
                   SELECT count(*) FROM matched""",
                cursor,
                last,
                now,
                now + GIVE_UP_AFTER,
            )
            await conn.execute("UPDATE webhook_cursor SET last_event_id = $1", last)
        return int(created)

    async def deliver_due(self, limit: int = 50) -> int:
        """Try every due delivery once; returns how many were tried."""
        now = self.clock()
        rows = await self.pool.fetch(
            """UPDATE webhook_deliveries d SET locked_until = $1 + interval '1 minute', attempts = d.attempts + 1
               WHERE d.id IN (SELECT id FROM webhook_deliveries
                              WHERE status = 'pending' AND next_attempt_at <= $1
                                AND (locked_until IS NULL OR locked_until < $1)
                              ORDER BY next_attempt_at FOR UPDATE SKIP LOCKED LIMIT $2)
               RETURNING d.id, d.webhook_id, d.event_id, d.attempts, d.give_up_at""",
            now,
            limit,
        )
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _payload(self, event_id: int) -> tuple[bytes, Any]:
        row = await self.pool.fetchrow(
            "SELECT id, company_id, kind, payload, created_at, trace_context FROM events WHERE id = $1", event_id
        )
        body = {
            "id": str(row["id"]),
            "type": row["kind"],
            "created_at": row["created_at"].isoformat(),
            "company_id": str(row["company_id"]) if row["company_id"] else None,
            "data": json.loads(row["payload"]),
        }
        return json.dumps(body, separators=(",", ":")).encode(), row

    async def _deliver(self, row: Any) -> None:
        trace_context = await self.pool.fetchval("SELECT trace_context FROM events WHERE id = $1", row["event_id"])
        with (
            tracing.continued(trace_context),
            tracing.span(
                "webhook.deliver", **{"webhook.event_id": row["event_id"], "webhook.attempt": row["attempts"]}
            ),
        ):
            await self._deliver_one(row)

    async def _deliver_one(self, row: Any) -> None:
        hook = await self.pool.fetchrow("SELECT destination, secret FROM webhooks WHERE id = $1", row["webhook_id"])
        if hook is None:
            return
        body, event = await self._payload(row["event_id"])
        stamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Gateway-Signature": sign(hook["secret"], body, stamp),
            "X-Gateway-Event": event["kind"],
            "X-Gateway-Event-Id": str(event["id"]),
        }
        status: int | None = None
        error: str | None = None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                hook["destination"], data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                allow_redirects=False,
            ) as response:  # fmt: skip
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        if status in SUCCESS:
            await self.pool.execute(
                "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, last_status = $3, "
                "last_error = NULL, locked_until = NULL WHERE id = $1",
                row["id"], now, status,
            )  # fmt: skip
            return
        error = error or f"HTTP {status}"
        next_at = now + RETRY_EVERY
        final = next_at > row["give_up_at"]
        await self.pool.execute(
            "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, last_status = $4, last_error = $5, "
            "locked_until = NULL WHERE id = $1",
            row["id"], "failed" if final else "pending", next_at, status, error,
        )  # fmt: skip
        log.info("webhook_attempt_failed", delivery=row["id"], attempt=row["attempts"], error=error, final=final)

    async def run_once(self) -> bool:
        """Fan new events out to deliveries and try those that are due; True when any was tried."""
        await self.fan_out()
        return await self.deliver_due() > 0

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await run_loop("webhooks.delivery", self.run_once, stop, interval=self.poll_interval)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
