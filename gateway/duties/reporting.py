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
from typing import Any

import asyncpg
import structlog

import smp
from gateway.core.lifecycle import run_loop
from gateway.duties import queries
from gateway.duties.errors import ReportError
from gateway.duties.provider import Provider
from gateway.duties.report_documents import build_eusr, build_tsr, end_user_activity, month_period
from gateway.duties.states import ReportState, check_move
from gateway.duties.validation import ValidationResult, validate_report
from gateway.outbound.submission import SubmissionError, SubmitRequest, submit
from gateway.webhooks import queries as webhooks_queries

__all__ = ["KINDS", "BuiltReport", "ReportError", "ReportService", "due_date", "previous_month"]

log = structlog.get_logger("gateway.duties.reporting")

KINDS = {"TSR": smp.TSR, "EUSR": smp.EUSR}
_LOCK_KEY = 0x5045_5050_5250  # advisory lock: one scheduler per database
DUE_DAY = 15


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
            counts = await queries.month_exchange_counts(self.pool, lo, hi)
            content = build_tsr(counts, start=start, end=end, reporter=reporter)
        else:
            users = end_user_activity(await queries.month_end_users(self.pool, lo, hi))
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
        check_move(ReportState.BUILT, ReportState.QUEUED)
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
            if row is not None and row.state is ReportState.FAILED:
                # Delivery gave up (OpenPeppol's AP unreachable for the whole retry window):
                # tell the operators, and send it again on this check.
                log.error("report_delivery_failed", kind=kind, month=month, reason=row.last_error)
                await webhooks_queries.add_operator_event(
                    self.pool, "report.failed",
                    json.dumps({"kind": kind, "month": month, "reason": row.last_error or "delivery failed"}),
                )  # fmt: skip
                await queries.release_failed_report(self.pool, row.id)
            elif row is not None and row.outbound_id is not None:
                continue
            report = await self.build(kind, month)
            if not report.result.valid:
                rules = [f["rule_id"] for f in report.result.as_json()["errors"]][:10]
                log.error("report_invalid", kind=kind, month=month, rules=rules)
                if row is None or row.valid:  # operators hear of it once, not at every check
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
            async with queries.advisory_lock(self.pool, _LOCK_KEY) as mine:
                if mine:
                    await self.run_due(today)
        except ReportError as exc:
            log.error("reporting_failed", code=exc.code, reason=exc.message)
        return False

    async def run(self, stop: asyncio.Event, clock: Any = None) -> None:
        """The monthly schedule: check every ``check_interval``."""
        now = clock or (lambda: datetime.now(UTC))
        await run_loop("duties.reporting", lambda: self.check_due(now().date()), stop, interval=self.check_interval)
