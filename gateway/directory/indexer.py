"""Telling the Peppol Directory's indexer that a business card changed.

The indexer's REST interface takes a participant id: ``PUT {indexer_url}`` with the id
(``iso6523-actorid-upis::0192:991825827``) as the body makes it read the card from the SMP the
SML names for the participant; ``DELETE {indexer_url}/{id}`` removes the participant. The
Directory knows the SMP by its client certificate, so over https we present our SMP certificate
(mutual TLS). Each queued notification is tried until the indexer answers 2xx, again every
``directory.retry_interval`` seconds, and given up (``failed``, visible to operators, retried
by them) ``directory.give_up_after`` seconds after the change.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import structlog

import smp
from gateway.directory import queries
from gateway.directory.queries import IndexerNotification
from gateway.directory.states import IndexerAction, NotificationState, check_notification_move

__all__ = ["DirectoryIndexer", "attempt_outcome"]

log = structlog.get_logger("gateway.directory.indexer")

LEASE_SECONDS = 60.0  # a claimed notification is not claimed again meanwhile


def attempt_outcome(
    status: int | None, queued_at: datetime, now: datetime, *, retry_interval: float, give_up_after: float
) -> tuple[NotificationState, float | None]:
    """The state after one attempt (``status`` None: no answer) and when to try again."""
    if status is not None and 200 <= status < 300:
        return NotificationState.SENT, None
    if (now - queued_at).total_seconds() + retry_interval > give_up_after:
        return NotificationState.FAILED, None
    return NotificationState.PENDING, retry_interval


class DirectoryIndexer:
    """Sends due notifications to the indexer; one :meth:`step` is one batch."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        indexer_url: str,
        *,
        client_certificate: tuple[Path, Path] | None = None,  # (cert, key): mutual TLS over https
        trust: Path | None = None,
        retry_interval: float = 300.0,
        give_up_after: float = 86400.0,
        timeout: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pool = pool
        self.indexer_url = indexer_url.rstrip("/")
        self.client_certificate = client_certificate
        self.trust = trust
        self.retry_interval = retry_interval
        self.give_up_after = give_up_after
        self.timeout = timeout
        self.clock = clock

    def _tls(self) -> ssl.SSLContext | None:
        """Read at each batch: a renewed SMP certificate is presented without a restart."""
        if not self.indexer_url.lower().startswith("https://"):
            return None
        if self.client_certificate is None:
            return ssl.create_default_context(cafile=str(self.trust) if self.trust else None)
        cert, key = self.client_certificate
        return smp.client_tls_context(cert, key, self.trust)

    async def _send(
        self, session: aiohttp.ClientSession, notification: IndexerNotification, tls: ssl.SSLContext | None
    ) -> tuple[int | None, str | None]:
        participant = notification.participant
        try:
            if notification.action is IndexerAction.INDEX:
                request = session.put(
                    f"{self.indexer_url}/", data=participant.uri.encode(), headers={"Content-Type": "text/plain"},
                    ssl=tls if tls is not None else True, allow_redirects=False,
                )  # fmt: skip
            else:
                request = session.delete(
                    f"{self.indexer_url}/{participant.url_segment}", ssl=tls if tls is not None else True,
                    allow_redirects=False,
                )  # fmt: skip
            async with request as response:
                text = (await response.content.read(2000)).decode("utf-8", "replace")
                return response.status, None if response.status < 300 else f"HTTP {response.status}: {text[:300]}"
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]

    async def step(self) -> bool:
        """Send what is due; True when there was something to send."""
        due = await queries.claim_indexer_notifications(self.pool, lease_seconds=LEASE_SECONDS)
        if not due:
            return False
        tls = self._tls()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for notification in due:
                status, error = await self._send(session, notification, tls)
                state, retry_in = attempt_outcome(
                    status, notification.queued_at, self.clock(),
                    retry_interval=self.retry_interval, give_up_after=self.give_up_after,
                )  # fmt: skip
                check_notification_move(notification.state, state)
                recorded = await queries.record_indexer_outcome(
                    self.pool, notification.id, notification.generation,
                    state=state, status=status, error=error, retry_in=retry_in,
                )  # fmt: skip
                event = "directory_indexer_notified" if state is NotificationState.SENT else "directory_indexer_failed"
                (log.info if state is NotificationState.SENT else log.warning)(
                    event, participant=str(notification.participant), action=str(notification.action),
                    state=str(state), status=status, error=error, superseded=not recorded,
                    attempt=notification.attempts + 1,
                )  # fmt: skip
        return True
