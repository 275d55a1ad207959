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
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
import structlog
from lxml import etree

import smp
from gateway.core.lifecycle import Wakeup, run_loop
from gateway.documents.envelope import SbdhError, read_sbd
from gateway.duties import queries as duties_queries
from gateway.duties.mls_levels import NO_MLS_KINDS, ON_ACKNOWLEDGE, mls_owed, positive_code
from gateway.duties.provider import Provider
from gateway.duties.responses import (
    Issue,
    ReadDocument,
    build_mls,
    check_mls,
    check_response,
    read_document,
    spid_of_seat,
)
from gateway.duties.validation import Finding, ValidationResult
from gateway.inbound import queries
from gateway.inbound.errors import AlreadyProcessed
from gateway.inbound.states import MessageStatus
from gateway.outbound.states import OutboundState
from gateway.outbound.submission import SubmissionError, SubmitRequest, submit

__all__ = ["MLS_STATES", "InboundProcessor"]

log = structlog.get_logger("gateway.inbound.processing")

MAX_MLS_ISSUES = 50
# The states the MLS service levels read: an MLS is sent when its job is delivered, and one is
# owed for every rejected message.
MLS_STATES = duties_queries.MlsStates(delivered=OutboundState.DELIVERED, rejected=MessageStatus.REJECTED)


def _issues(result: ValidationResult) -> list[Issue]:
    """The fatal findings as MLS issues: syntax (SV) or business rule (BV) violations."""
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
        except SbdhError:  # it was checked on receipt; a stored message that no longer reads
            log.error("inbound_unreadable", message=message.id)
            await self._undeliverable(message)
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
        elif message.kind == "mls":  # always checked: a broken MLS is flagged, never taken as an answer
            result = await self._check_mls(message, business)
            accepted = result.valid
        mls_code: str | None = None
        held: str | None = None
        if mls_owed(message.kind, message.mls_type, accepted):
            mls_code = "RE" if not accepted else positive_code(result is not None and result.validated)
            if accepted and message.positive_mls == ON_ACKNOWLEDGE:
                if message.acknowledged:  # the ERP was quicker than this processor
                    mls_code = positive_code(True, acknowledged=True)
                else:
                    mls_code, held = None, mls_code  # goes out when the ERP acknowledges it
        try:
            answers = await self._finish(message, business, read, accepted, mls_code, result, held)
        except AlreadyProcessed:
            return
        log.info(
            "inbound_processed", message=message.id, kind=message.kind, accepted=accepted, mls=mls_code,
            mls_held=held, answers=answers, instance=envelope.instance_identifier,
        )  # fmt: skip

    async def _finish(
        self,
        message: queries.PendingInbound,
        business: etree._Element,
        read: ReadDocument,
        accepted: bool,
        mls_code: str | None,
        result: ValidationResult | None,
        held: str | None = None,
    ) -> int | None:
        """One transaction: link, mark done (entering the mailbox if held), queue the MLS."""
        async with self.pool.acquire() as conn, conn.transaction():
            answers = None
            if message.kind == "mls" and read.answers and read.code and accepted:
                answers = await duties_queries.link_mls(
                    conn, read.answers[0], message.sending_ap[-6:], read.code, _mls_reason(business), message.id
                )
            elif message.kind == "mls":
                broken = sorted({f.rule_id for f in result.findings if f.flag == "fatal"}) if result else []
                instance = read.answers[0] if read.answers else ""
                await duties_queries.flag_mls(
                    conn, instance, message.sending_ap[-6:], read.code or "", broken, message.id
                )
            elif message.kind in ("response", "mlr") and read.answers and read.code:
                answers = await duties_queries.link_response(
                    conn, message.company_id, message.sender, read.answers, read.code, message.id
                )
            outcome = queries.InboundOutcome(
                accepted, json.dumps(result.as_json()) if result is not None else None, mls_code, answers, held
            )
            if not await queries.finish_inbound_processing(conn, message, outcome):
                raise AlreadyProcessed()
            if mls_code is not None:
                issues = _issues(result) if result is not None and mls_code == "RE" else []
                await self._queue_mls(conn, message.subject, mls_code, issues)
        return answers

    async def _check_mls(self, message: queries.PendingInbound, business: etree._Element) -> ValidationResult:
        """A received MLS against the official MLS rules; when they cannot run here, against our
        own implementation of the same rules (``check_mls``), saying so in the result."""
        result = await self.validate(message.sbd)
        if result.validated:
            return result
        log.warning("inbound_mls_not_validated", message=message.id, why=result.layers_skipped)
        local = [Finding("mls", rule, "fatal", "/", text) for rule, text in check_mls(business)]
        result.findings.extend(local)
        result.valid = not local
        result.layers_skipped["mls"] = "the official MLS rules could not run; checked by check_mls instead"
        return result

    async def _undeliverable(self, message: queries.PendingInbound) -> None:
        """A stored message that cannot be handed to its receiver, ever: rejected, and the MLS
        says so (``FD``, the only case it is used for)."""
        owed = message.kind not in NO_MLS_KINDS
        outcome = queries.InboundOutcome(False, None, "RE" if owed else None, None)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await queries.finish_inbound_processing(conn, message, outcome):
                return
            if owed:
                failed = Issue("NA", "FD", "the document could not be delivered to the receiver")
                await self._queue_mls(conn, message.subject, "RE", [failed])

    async def acknowledged(self, company_id: uuid.UUID, entry_id: int) -> str | None:
        """The company's ERP acknowledged a mailbox entry: its held positive MLS goes out now
        (``AP``: the receiver confirmed it). Returns the code sent, None when none was held."""
        async with self.pool.acquire() as conn, conn.transaction():
            subject = await queries.take_held_mls_acknowledged(conn, company_id, entry_id, "AP")
            if subject is None:
                return None
            await self._queue_mls(conn, subject, "AP", [])
        log.info("mls_on_acknowledge", message=subject.id, code="AP")
        return "AP"

    async def send_held_due(self, received_before: datetime, limit: int = 100) -> int:
        """Held positive MLS whose deadline nears without an acknowledgement go out as ``AB``
        (delivered to the receiver, not confirmed): at most one MLS per document, in time."""
        async with self.pool.acquire() as conn, conn.transaction():
            subjects = await queries.take_held_mls_due(conn, received_before, "AB", limit)
            for subject in subjects:
                await self._queue_mls(conn, subject, "AB", [])
        for subject in subjects:
            log.info("mls_deadline_ab", message=subject.id)
        return len(subjects)

    async def _queue_mls(
        self, conn: asyncpg.Connection, subject: queries.MlsSubject, code: str, issues: list[Issue]
    ) -> None:
        """Queue the MLS in the caller's transaction: to the envelope's MLS_TO when it has one,
        falling back to the sending provider's SPID (MLS SPOG 5.4) when that cannot be resolved
        or refuses it; to the SPID otherwise."""
        try:
            spid: str | None = spid_of_seat(subject.sending_ap)
        except ValueError:
            spid = None
        target = subject.mls_to or spid
        if target is None:
            log.warning("mls_no_receiver", message=subject.id, sending_ap=subject.sending_ap)
            return
        if code == "RE" and not issues:
            issues = [Issue("NA", "BV", "rejected by the receiving company's validation policy")]
        fallback = self._mls_request(subject, spid, code, issues) if spid and spid != target else None
        request = dataclasses.replace(self._mls_request(subject, target, code, issues), fallback=fallback)
        try:
            job = await submit(conn, request)
        except SubmissionError as exc:
            log.warning("mls_not_built", message=subject.id, error=exc.message)
            return
        await queries.set_inbound_mls(conn, subject.id, job.job_id)

    def _mls_request(self, subject: queries.MlsSubject, receiver: str, code: str, issues: list[Issue]) -> SubmitRequest:
        document = build_mls(
            sender_spid=self.provider.spid,
            receiver_spid=receiver,
            referenced_instance=subject.instance_identifier,
            code=code,
            description=f"rejected by the receiving access point: {len(issues)} issue(s)" if issues else None,
            issues=issues,
        )
        return SubmitRequest(
            document, self.retry_window, sender=self.provider.spid, receiver=receiver,
            document_type=str(smp.MLS.document_type), process=str(smp.MLS.process),
            country_c1=self.provider.country, company_id=self.provider.company_id,
        )  # fmt: skip
