"""Keeping the Message Level Status deadlines: warn operators of a document that nears its
limit without its MLS, and send a held positive MLS before its deadline passes.

One step every ``interval`` seconds, by any number of processes: each document is warned of
once (marked in the statement that raises the operator event), and a held MLS is taken by one
process (``SKIP LOCKED``). The clock is injected, so tests move time instead of waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from gateway.duties import queries
from gateway.duties.mls_levels import LEVELS, MLS_1, warn_from

__all__ = ["MlsWatch"]

log = structlog.get_logger("gateway.duties.mls_watch")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MlsWatch:
    """Warns of MLS deadlines that near, and sends held positive MLS in time."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        states: queries.MlsStates,
        *,
        send_held_due: Callable[[datetime], Awaitable[int]] | None = None,
        warn_margin: float = 300.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.pool = pool
        self.states = states
        self.send_held_due = send_held_due
        self.margin = timedelta(seconds=warn_margin)
        self.clock = clock

    async def step(self) -> bool:
        """One round; True when it did something (the loop then runs again at once)."""
        now = self.clock()
        held = 0
        if self.send_held_due is not None:
            # a minute before operators would be warned, so the AB is usually there by then
            held = await self.send_held_due(now - (warn_from(MLS_1, self.margin) - timedelta(minutes=1)))
        warned = 0
        for level in LEVELS:
            late = await queries.warn_mls_late(
                self.pool, level, warn_from(level, self.margin).total_seconds(), self.states, now=now
            )
            for doc in late:
                log.warning("mls_deadline_near", level=level.name, document=doc.id, partner=doc.partner,
                            started_at=doc.started_at.isoformat())  # fmt: skip
            warned += len(late)
        return bool(held or warned)
