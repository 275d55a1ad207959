"""Peppol Reporting duties: build the monthly TSR and EUSR from the recorded exchanges, check
them against the official rules, store them, and send them through our own outbound path to
OpenPeppol's reporting participant before the 15th of the next month.

One process of a deployment runs the schedule at a time (a PostgreSQL advisory lock); the
reports table holds one row per report and month, so a restart picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog

import smp
from gateway.core.lifecycle import run_loop
from gateway.duties import queries
from gateway.duties.report_documents import EndUserActivity, ExchangeCount, build_eusr, build_tsr, month_period
from gateway.duties.validation import ValidationResult, validate_report
from gateway.inbound.processing import Provider
from gateway.outbound.states import OutboundState
from gateway.outbound.submission import SubmissionError, SubmitRequest, submit
from gateway.webhooks import queries as webhooks_queries

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["KINDS", "BuiltReport", "ReportError", "ReportService", "due_date", "previous_month"]

log = structlog.get_logger("gateway.duties.reporting")

KINDS = {"TSR": smp.TSR, "EUSR": smp.EUSR}
_LOCK_KEY = 0x5045_5050_5250  # advisory lock: one scheduler per database
DUE_DAY = 15


class ReportError(Exception):
    """A report cannot be built or sent; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BuiltReport:
    id: int | None  # None: a report for that month was sent already and is kept
    kind: str
    start: date
    end: date
    content: bytes
    result: ValidationResult


def previous_month(today: date) -> str:
    first = today.replace(day=1)
    last = first - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def due_date(end: date) -> date:
    """Reports are due within 15 days after the end of the month."""
    return end + timedelta(days=DUE_DAY)


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return datetime.combine(start, time(), UTC), datetime.combine(end + timedelta(days=1), time(), UTC)


class ReportService:
    """Builds, checks, stores and sends this access point's reports."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        provider: Provider,
        *,
        receiver: str,
        retry_window: float,
        send: bool = True,
        check_interval: float = 3600.0,
        validate: Callable[[bytes], Awaitable[ValidationResult]] | None = None,
    ) -> None:
        self.validate = validate or (lambda data: asyncio.to_thread(validate_report, data))
        self.pool = pool
        self.provider = provider
        self.receiver = receiver
        self.retry_window = retry_window
        self.send_enabled = send
        self.check_interval = check_interval

    @classmethod
    def for_runtime(cls, runtime: Runtime, provider: Provider) -> ReportService:
        """The service as the settings describe it, checking reports in the runtime's pool."""
        settings = runtime.settings
        return cls(
            runtime.pool, provider, receiver=settings.reporting_receiver, retry_window=settings.retry_window,
            send=settings.reporting_send, check_interval=settings.reporting_check_interval,
            validate=runtime.validate_report,
        )  # fmt: skip

    async def build(self, kind: str, month: str, *, store_it: bool = True) -> BuiltReport:
        if kind not in KINDS:
            raise ReportError("unknown_report", f"{kind!r} is not TSR or EUSR")
        try:
            start, end = month_period(month)
        except ValueError as exc:
            raise ReportError("invalid_month", str(exc)) from None
        lo, hi = _bounds(start, end)
        reporter = self.provider.seat_id
        if kind == "TSR":
            counts = [ExchangeCount(**dict(r)) for r in await queries.month_exchange_counts(self.pool, lo, hi)]
            content = build_tsr(counts, start=start, end=end, reporter=reporter)
        else:
            users = [EndUserActivity(**dict(r)) for r in await queries.month_end_users(self.pool, lo, hi)]
            content = build_eusr(users, start=start, end=end, reporter=reporter)
        result = await self.validate(content)
        report_id = None
        if store_it:
            report_id = await queries.save_report(
                self.pool, kind, start, end, content, result.valid, json.dumps(result.as_json())
            )
        return BuiltReport(report_id, kind, start, end, content, result)

    async def send(self, report: BuiltReport) -> int:
        """Queue a valid stored report for OpenPeppol's reporting participant; returns the job."""
        if not report.result.valid:
            raise ReportError("report_invalid", f"the {report.kind} breaks the reporting rules; it is not sent")
        if report.id is None:
            raise ReportError("report_sent", f"the {report.kind} for {report.start:%Y-%m} was sent already")
        document_type = KINDS[report.kind]
        request = SubmitRequest(
            report.content, self.retry_window, sender=self.provider.spid, receiver=self.receiver,
            document_type=str(document_type.document_type), process=str(document_type.process),
            country_c1=self.provider.country, company_id=self.provider.company_id,
        )  # fmt: skip
        try:
            job = (await submit(self.pool, request)).job_id
        except SubmissionError as exc:
            raise ReportError("report_not_sendable", exc.message) from None
        await queries.set_report_sent(self.pool, report.id, job)
        log.info("report_queued", kind=report.kind, month=f"{report.start:%Y-%m}", job=job)
        return job

    async def run_due(self, today: date) -> list[str]:
        """Build (and send) last month's reports that are not sent yet; returns what it did."""
        month = previous_month(today)
        start, _ = month_period(month)
        done: list[str] = []
        for kind in KINDS:
            row = await queries.report_row(self.pool, kind, start)
            if row is not None and row["outbound_state"] == OutboundState.FAILED:
                # Delivery gave up (OpenPeppol's AP unreachable for the whole retry window):
                # tell the operators, and send it again on this check.
                log.error("report_delivery_failed", kind=kind, month=month, reason=row["last_error"])
                await webhooks_queries.add_operator_event(
                    self.pool, "report.failed",
                    json.dumps({"kind": kind, "month": month, "reason": row["last_error"] or "delivery failed"}),
                )  # fmt: skip
                await queries.release_failed_report(self.pool, row["id"])
            elif row is not None and row["outbound_id"] is not None:
                continue
            report = await self.build(kind, month)
            if not report.result.valid:
                rules = [f["rule_id"] for f in report.result.as_json()["errors"]][:10]
                log.error("report_invalid", kind=kind, month=month, rules=rules)
                if row is None or row["valid"]:  # operators hear of it once, not at every check
                    await webhooks_queries.add_operator_event(
                        self.pool, "report.failed", json.dumps({"kind": kind, "month": month, "rules": rules})
                    )
                done.append(f"{kind} {month} invalid")
                continue
            if self.send_enabled:
                await self.send(report)
                done.append(f"{kind} {month} sent")
            else:
                done.append(f"{kind} {month} built")
        return done

    async def check_due(self, today: date) -> bool:
        """One check of the monthly schedule, by one process at a time (an advisory lock)."""
        try:
            async with self.pool.acquire() as conn:
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
                    try:
                        await self.run_due(today)
                    finally:
                        await conn.fetchval("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        except ReportError as exc:
            log.error("reporting_failed", code=exc.code, reason=exc.message)
        return False

    async def run(self, stop: asyncio.Event, clock: Any = None) -> None:
        """The monthly schedule: check every ``check_interval``."""
        now = clock or (lambda: datetime.now(UTC))
        await run_loop("duties.reporting", lambda: self.check_due(now().date()), stop, interval=self.check_interval)
