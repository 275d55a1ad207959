"""Webhook delivery from the events outbox.

Events are rows written in the same transaction as the change they describe; a trigger adds
each one to the ``webhook_outbox`` table in that transaction. A fan-out step turns the events of
the outbox into one delivery row per matching webhook (a company's own webhooks, and vendor
webhooks of the operator the company is linked to), deleting their outbox rows in the same
statement, so no event is passed over (however late it commits) or fanned out twice (however
many workers run). Deliveries are POSTed as signed JSON; a 200, 201 or 204 within 5 seconds
ends them, anything else is tried again every hour for 24 hours (by default; the ``[webhooks]``
settings), then the delivery is marked failed (and can be retried through the API). A receiver
may see an event twice after a crash: the event id is the idempotency key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import structlog

from gateway.core import tracing
from gateway.core.config import Settings
from gateway.core.lifecycle import run_loop
from gateway.core.tls import tls_context
from gateway.webhooks import queries
from gateway.webhooks.states import DeliveryState, check_move

__all__ = ["WebhookWorker", "payload", "sign", "verify_signature"]

log = structlog.get_logger("gateway.webhooks.delivery")

SUCCESS = {200, 201, 204}
_DEFAULTS = Settings()


def payload(event: queries.Event) -> bytes:
    """The JSON body POSTed for an event (compact; the signature covers these exact bytes)."""
    body = {
        "id": str(event.id),
        "type": event.kind,
        "created_at": event.created_at.isoformat(),
        "company_id": str(event.company_id) if event.company_id else None,
        "data": json.loads(event.payload),
    }
    return json.dumps(body, separators=(",", ":")).encode()


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
    """Fans out events and delivers them; ``clock`` is injectable for the retry schedule, which
    the settings ``webhooks.retry_interval``, ``webhooks.give_up_after`` and ``webhooks.timeout``
    describe (the defaults here are theirs)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_interval: float = 1.0,
        retry_every: float = _DEFAULTS.webhook_retry_interval,
        give_up_after: float = _DEFAULTS.webhook_give_up_after,
        timeout: float = _DEFAULTS.webhook_timeout,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.poll_interval = poll_interval
        self.retry_every = timedelta(seconds=retry_every)
        self.give_up_after = timedelta(seconds=give_up_after)
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def fan_out(self, batch: int = 500, max_batches: int = 20) -> int:
        """Create deliveries for the events in the outbox, ``batch`` events per transaction, up
        to ``max_batches`` (so a large backlog does not hold up delivery); returns how many."""
        created = 0
        for _ in range(max_batches):
            now = self.clock()
            done = await queries.fan_out_events(self.pool, now, now + self.give_up_after, batch)
            created += done.deliveries
            if done.events:
                log.debug("webhook_fan_out", events=done.events, deliveries=done.deliveries)
            if done.events < batch:
                break
        return created

    async def deliver_due(self, limit: int = 50) -> int:
        """Try every due delivery once; returns how many were tried."""
        due = await queries.claim_due_deliveries(self.pool, self.clock(), limit)
        await asyncio.gather(*(self._deliver(delivery) for delivery in due))
        return len(due)

    async def _deliver(self, delivery: queries.DueDelivery) -> None:
        trace_context = await queries.event_trace_context(self.pool, delivery.event_id)
        with (
            tracing.continued(trace_context),
            tracing.span(
                "webhook.deliver", **{"webhook.event_id": delivery.event_id, "webhook.attempt": delivery.attempts}
            ),
        ):
            await self._deliver_one(delivery)

    async def _deliver_one(self, delivery: queries.DueDelivery) -> None:
        hook = await queries.delivery_target(self.pool, delivery.webhook_id)
        if hook is None:
            return
        event = await queries.get_event(self.pool, delivery.event_id)
        body = payload(event)
        stamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Gateway-Signature": sign(hook.secret, body, stamp),
            "X-Gateway-Event": event.kind,
            "X-Gateway-Event-Id": str(event.id),
        }
        status: int | None = None
        error: str | None = None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                hook.destination, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False, ssl=tls_context(),
            ) as response:  # fmt: skip
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        if status in SUCCESS:
            check_move(DeliveryState.PENDING, DeliveryState.DELIVERED)
            await queries.mark_delivered(self.pool, delivery.id, now, status)
            return
        error = error or f"HTTP {status}"
        next_at = now + self.retry_every
        final = next_at > delivery.give_up_at
        state = check_move(DeliveryState.PENDING, DeliveryState.FAILED if final else DeliveryState.PENDING)
        await queries.mark_attempt_failed(
            self.pool, delivery.id, state=state, next_attempt_at=next_at, last_status=status, error=error
        )
        log.info("webhook_attempt_failed", delivery=delivery.id, attempt=delivery.attempts, error=error, final=final)

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
