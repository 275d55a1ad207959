"""Our certificates over their lifetime: a renewed AP or SMP certificate (and key) is picked up
from its files without a restart, and operators are warned from 30 days before one expires.

Every Peppol provider renews its AP certificate about every two years, and must publish the
new one in its SMP at the switch; here both follow the files: replace them and the gateway signs,
decrypts and publishes with the new pair from the next check on (``ap.reload_interval``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import structlog
from cryptography.hazmat.primitives import hashes

from gateway.core.config import ConfigError
from gateway.core.lifecycle import run_loop
from gateway.security.identity import ApIdentity, load_identity
from gateway.webhooks import queries as webhooks_queries

__all__ = ["CertificateWatcher", "WatchedIdentity"]

log = structlog.get_logger("gateway.security.certificates")

WARN_DAYS = 30


@dataclass
class WatchedIdentity:
    name: str  # "ap" or "smp"
    identity: ApIdentity
    key_path: Path
    cert_path: Path
    stamp: tuple[tuple[int, int], ...] = ()
    warned_on: str = ""

    def file_stamp(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in (self.key_path, self.cert_path):
            try:
                st = os.stat(path)
            except OSError:
                return ()
            stamps.append((st.st_mtime_ns, st.st_size))
        return tuple(stamps)


def _describe(identity: ApIdentity) -> dict[str, str]:
    cert = identity.cert
    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


class CertificateWatcher:
    """Reloads changed key/certificate files and warns about expiry."""

    def __init__(
        self,
        watched: list[WatchedIdentity],
        pool: asyncpg.Pool | None = None,
        *,
        interval: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.watched = watched
        self.pool = pool
        self.interval = interval
        self.clock = clock
        for item in watched:
            item.stamp = item.file_stamp()

    async def check_once(self) -> list[str]:
        """Reload what changed and warn about what expires soon; returns what happened."""
        happened: list[str] = []
        for item in self.watched:
            stamp = item.file_stamp()
            if stamp and stamp != item.stamp:
                try:
                    fresh = load_identity(item.key_path, item.cert_path, item.name)
                except ConfigError as exc:  # half-written or mismatched: keep the old pair, try again
                    log.warning("certificate_reload_failed", certificate=item.name, problem=exc.problem)
                else:
                    old = _describe(item.identity)
                    item.identity.replace(fresh)
                    item.stamp = stamp
                    item.warned_on = ""
                    log.info("certificate_reloaded", certificate=item.name, old=old, new=_describe(fresh))
                    happened.append(f"{item.name} reloaded")
            happened += await self._expiry(item)
        return happened

    async def _expiry(self, item: WatchedIdentity) -> list[str]:
        now = self.clock()
        days = (item.identity.cert.not_valid_after_utc - now).total_seconds() / 86400
        today = now.date().isoformat()
        if days > WARN_DAYS or item.warned_on == today:
            return []
        item.warned_on = today  # once a day
        kind = "certificate.expired" if days <= 0 else "certificate.expiring"
        facts = {"certificate": item.name, "days_left": round(days, 1), **_describe(item.identity)}
        (log.error if days <= 0 else log.warning)(kind.replace(".", "_"), **facts)
        if self.pool is not None:
            try:
                await webhooks_queries.add_operator_event(self.pool, kind, json.dumps(facts))
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("certificate_event_not_recorded", error=type(exc).__name__)
        return [f"{item.name} {kind}"]

    async def run(self, stop: asyncio.Event) -> None:
        async def step() -> bool:
            await self.check_once()
            return False

        await run_loop("security.certificates", step, stop, interval=self.interval)
