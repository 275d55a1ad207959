"""After the receipt: what a received message still needs, done off the AS4 path.

The receipt is sent as soon as the message is committed. Whatever else is due is recorded on
the message and done here, by any number of workers in any number of processes (claims with
``SKIP LOCKED`` and a lease): validation by the receiving company's policy, the Message Level
Status to the sending service provider when the envelope or a rejection asks for one (never for
an MLS or an MLR, at most one per message: it is queued in the same transaction that marks the
message done), and linking a received MLS or business response to the document it answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import asyncpg
import structlog
from lxml import etree

import smp
from gateway.core.lifecycle import Wakeup, run_loop
from gateway.documents.envelope import SbdhError, read_sbd
from gateway.duties import queries as duties_queries
from gateway.duties.provider import Provider
from gateway.duties.responses import Issue, ReadDocument, build_mls, check_response, read_document, spid_of_seat
from gateway.duties.validation import Finding, ValidationResult
from gateway.inbound import queries
from gateway.inbound.errors import AlreadyProcessed
from gateway.outbound.submission import SubmissionError, SubmitRequest, submit

__all__ = ["InboundProcessor"]

log = structlog.get_logger("gateway.inbound.processing")

MAX_MLS_ISSUES = 50


def _issues(result: ValidationResult) -> list[Issue]:
    issues = []
    for finding in result.findings:
        if finding.flag != "fatal":
            continue
        reason = "SV" if finding.layer in ("xml", "schema") else "BV"
        issues.append(Issue(finding.location or "NA", reason, f"[{finding.rule_id}] {finding.text}"[:1000]))
    return issues[:MAX_MLS_ISSUES]


def _mls_reason(mls: etree._Element) -> str:
    """The MLS description followed by its issues (each names the broken rule)."""
    texts = [mls.findtext("{*}DocumentResponse/{*}Response/{*}Description") or ""]
    texts += [d.text or "" for d in mls.iterfind("{*}DocumentResponse/{*}LineResponse/{*}Response/{*}Description")]
    return "; ".join(" ".join(t.split()) for t in texts if t.strip())[:4000]


class InboundProcessor:
    """Works through received messages that have something left to do."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        provider: Provider,
        validate: Callable[[bytes], Awaitable[ValidationResult]],
        *,
        retry_window: float,
        poll_interval: float = 1.0,
        lease_seconds: float = 300.0,
        wake: Wakeup | None = None,
    ) -> None:
        self.pool = pool
        self.provider = provider
        self.validate = validate
        self.retry_window = retry_window
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self._wake = wake or Wakeup()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        await run_loop("inbound.processing", self.run_once, stop, interval=self.poll_interval, wake=self._wake)

    async def run_once(self) -> bool:
        message = await queries.claim_inbound_processing(self.pool, self.lease_seconds)
        if message is None:
            return False
        await self.process(message)
        return True

    async def process(self, message: queries.PendingInbound) -> None:
        try:
            envelope, business = read_sbd(message.sbd, require_country=False)
        except SbdhError:  # it was checked on receipt; a stored message always reads
            log.error("inbound_unreadable", message=message.id)
            return
        read = read_document(business)
        result: ValidationResult | None = None
        accepted = True
        if message.inbound_validation != "off" and message.kind in ("business", "response"):
            result = await self.validate(message.sbd)
            if message.kind == "response":
                extra = [Finding("response", rule, "fatal", "/", text) for rule, text in check_response(business)]
                result.findings.extend(extra)
                result.valid = result.valid and not extra
            accepted = result.valid or message.inbound_validation == "warn"
            if not result.validated:  # not known to be invalid: never refused for it (start-up warns)
                log.warning("inbound_not_validated", message=message.id, why=result.layers_skipped)
                accepted = True
        mls_code: str | None = None
        if message.kind not in ("mls", "mlr"):
            if not accepted:
                mls_code = "RE"
            elif message.mls_type == "ALWAYS_SEND":
                mls_code = "AP" if result is not None else "AB"
        try:
            answers = await self._finish(message, business, read, accepted, mls_code, result)
        except AlreadyProcessed:
            return
        log.info(
            "inbound_processed", message=message.id, kind=message.kind, accepted=accepted, mls=mls_code,
            answers=answers, instance=envelope.instance_identifier,
        )  # fmt: skip

    async def _finish(
        self,
        message: queries.PendingInbound,
        business: etree._Element,
        read: ReadDocument,
        accepted: bool,
        mls_code: str | None,
        result: ValidationResult | None,
    ) -> int | None:
        """One transaction: link, mark done (entering the mailbox if held), queue the MLS."""
        async with self.pool.acquire() as conn, conn.transaction():
            answers = None
            if message.kind == "mls" and read.answers and read.code:
                answers = await duties_queries.link_mls(
                    conn, read.answers[0], message.sending_ap[-6:], read.code, _mls_reason(business), message.id
                )
            elif message.kind in ("response", "mlr") and read.answers and read.code:
                answers = await duties_queries.link_response(
                    conn, message.company_id, message.sender, read.answers, read.code, message.id
                )
            outcome = queries.InboundOutcome(
                accepted, json.dumps(result.as_json()) if result is not None else None, mls_code, answers
            )
            if not await queries.finish_inbound_processing(conn, message, outcome):
                raise AlreadyProcessed()
            if mls_code is not None:
                await self._queue_mls(conn, message, mls_code, result)
        return answers

    async def _queue_mls(
        self, conn: asyncpg.Connection, message: queries.PendingInbound, code: str, result: ValidationResult | None
    ) -> None:
        try:
            target = message.mls_to or spid_of_seat(message.sending_ap)
        except ValueError:
            log.warning("mls_no_receiver", message=message.id, sending_ap=message.sending_ap)
            return
        issues = _issues(result) if result is not None and code == "RE" else []
        if code == "RE" and not issues:
            issues = [Issue("NA", "FD", "the document could not be delivered to the receiver")]
        document = build_mls(
            sender_spid=self.provider.spid,
            receiver_spid=target,
            referenced_instance=message.instance_identifier,
            code=code,
            description=f"rejected by the receiving access point: {len(issues)} rule(s) broken" if issues else None,
            issues=issues,
        )
        request = SubmitRequest(
            document, self.retry_window, sender=self.provider.spid, receiver=target,
            document_type=str(smp.MLS.document_type), process=str(smp.MLS.process),
            country_c1=self.provider.country, company_id=self.provider.company_id,
        )  # fmt: skip
        try:
            job = await submit(conn, request)
        except SubmissionError as exc:
            log.warning("mls_not_built", message=message.id, error=exc.message)
            return
        await queries.set_inbound_mls(conn, message.id, job.job_id)
