"""The outbound worker: claim a due job, route it, send it over AS4, record the outcome.

Workers (any number, in any number of processes) claim jobs with ``FOR UPDATE SKIP LOCKED``,
find the receiver with ``smp``, build and send the AS4 message with ``as4``, verify the
receipt, and record the outcome with an audit line. What an outcome means (fail, retry when,
give up) is decided in :mod:`gateway.outbound.outcome`; the retry schedule lives in PostgreSQL
so it survives restarts.

A claim holds a short lease (``workers.lease_seconds``, 30 s) that a heartbeat renews every
third of it while the delivery runs, so a job whose process died is taken again within seconds,
however long deliveries take. Every write for the attempt (renewal, outcome, giving the job
back) applies only while the claim's token is still the job's: a worker that lost its lease
cannot overwrite the newer attempt. The resend keeps the AS4 MessageId, so a receiver that
stored the first one answers it as a duplicate (with its receipt) and the job is delivered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import tempfile
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import aiohttp
import asyncpg
import structlog
from cryptography import x509

import as4
import smp
from gateway.core import tracing
from gateway.core.lifecycle import Wakeup, run_loop
from gateway.core.metrics import Metrics
from gateway.documents import queries as documents_queries
from gateway.documents.envelope import Envelope, read_sbd
from gateway.documents.spool import Spool, SpoolWriter, skeleton_of
from gateway.outbound import outcome, queries
from gateway.outbound.circuits import Admission, EndpointGuard
from gateway.outbound.errors import DeliveryError, Permanent
from gateway.outbound.states import CircuitState, OutboundState, check_move
from gateway.outbound.submission import NOTIFY_CHANNEL
from gateway.security.identity import ApIdentity
from gateway.security.trust import CertificateTrust

__all__ = ["OutboundWorker"]

log = structlog.get_logger("gateway.outbound.worker")

# A large message gets its send timeout plus the time to move it at this rate (bytes/s): a
# hundred megabytes at a slow partner's pace must not time out like a receipt that never came.
LARGE_SEND_BYTES_PER_SECOND = 1024 * 1024


def _evidence(frame: as4.StreamedFrame, attachment: IO[bytes]) -> Spool:
    """The message as sent (``prefix ‖ attachment ‖ suffix``) in a spool file."""
    out = SpoolWriter()
    try:
        out.write(frame.prefix)
        attachment.seek(0)
        while chunk := attachment.read(1 << 20):
            out.write(chunk)
        out.write(frame.suffix)
    except BaseException:
        out.discard()
        raise
    return out.close()


class OutboundWorker:
    """Deliver queued jobs until stopped."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        identity: ApIdentity,
        trust: CertificateTrust,
        discovery: smp.SmpClient | None,
        *,
        retry_initial: float = 5.0,
        retry_max: float = 900.0,
        poll_interval: float = 1.0,
        send_timeout: float = 60.0,
        metrics: Metrics | None = None,
        lease_seconds: float = 30.0,
        guard: EndpointGuard | None = None,
    ) -> None:
        self.guard = guard or EndpointGuard(pool)
        self.lease_seconds = lease_seconds
        self.metrics = metrics
        self.pool = pool
        self.identity = identity
        self.trust = trust
        self.discovery = discovery
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.poll_interval = poll_interval
        self.send_timeout = send_timeout
        # One permit per "there is work" signal: a notification wakes one idle worker, which
        # then keeps claiming until the queue is empty (waking all of them would only make
        # the others run empty claims).
        self._work = Wakeup()
        self._session: aiohttp.ClientSession | None = None
        # While run() works, recording an outcome also claims the next due job (one statement),
        # which the loop that finished takes next; one given back if the loops stop first.
        self._chained = False
        self._next: collections.deque[queries.OutboundJob] = collections.deque()

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        return outcome.backoff(attempt, initial=self.retry_initial, maximum=self.retry_max)

    def wake(self) -> None:
        self._work.set()

    async def run(self, stop: asyncio.Event, concurrency: int = 1) -> None:
        """Work until ``stop`` is set, with ``concurrency`` jobs in flight."""
        listener: asyncpg.Connection | None = None

        self._work.limit = max(1, concurrency)  # more permits than loops would be empty claims

        def on_notify(*_: object) -> None:
            self.wake()

        try:
            listener = await self.pool.acquire()
            await listener.add_listener(NOTIFY_CHANNEL, on_notify)
        except (OSError, asyncpg.PostgresError):
            listener = None
        self._session = aiohttp.ClientSession()
        self._chained = True
        try:
            await asyncio.gather(
                *(
                    run_loop("outbound.delivery", self.run_once, stop, interval=self.poll_interval, wake=self._work)
                    for _ in range(concurrency)
                )
            )
        finally:
            self._chained = False
            while self._next:  # claimed with an outcome, not started: back to the queue at once
                job = self._next.popleft()
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await queries.release_outbound(self.pool, job.id, job.claim, "released: the gateway stopped")
            await self._session.close()
            if listener is not None:
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await listener.remove_listener(NOTIFY_CHANNEL, on_notify)
                await self.pool.release(listener)

    async def deliver_now(self, job_id: int) -> bool:
        """Deliver one given job in this process (False if a worker elsewhere already took it)."""
        job = await queries.claim_outbound(self.pool, self.lease_seconds, job_id=job_id)
        if job is None:
            return False
        own = self._session is None
        if own:
            self._session = aiohttp.ClientSession()
        try:
            await self.deliver(job)
        finally:
            if own and self._session is not None:
                await self._session.close()
                self._session = None
        return True

    async def deliver_and_wait(self, job_id: int, timeout: float = 60.0) -> queries.OutboundStatus:
        """Deliver a job in this process, or, when a running gateway took it first, wait up to
        ``timeout`` seconds for that gateway's outcome (for commands that print one)."""
        await self.deliver_now(job_id)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await queries.outbound_status(self.pool, job_id)
            assert status is not None
            pending = status.state in (OutboundState.QUEUED, OutboundState.SENDING)
            if not pending or asyncio.get_running_loop().time() > deadline:
                return status
            await asyncio.sleep(0.1)

    async def run_once(self) -> bool:
        """Claim and deliver one job (or the one claimed with the last outcome); False when
        there was nothing to do."""
        job = self._next.popleft() if self._next else await queries.claim_outbound(self.pool, self.lease_seconds)
        if job is None:
            return False
        try:
            await self.deliver(job)
        except asyncio.CancelledError:
            # Stopping with a delivery in flight: give the job back now instead of leaving it
            # to its lease (the receiver answers a resend of a delivered message as a duplicate).
            check_move(OutboundState.SENDING, OutboundState.RETRYING)
            await asyncio.shield(
                queries.release_outbound(self.pool, job.id, job.claim, "released: the gateway stopped")
            )
            raise
        return True

    async def _route(self, job: queries.OutboundJob) -> tuple[str, x509.Certificate]:
        if job.fixed_endpoint and job.endpoint_url and job.endpoint_cert:
            return job.endpoint_url, x509.load_der_x509_certificate(job.endpoint_cert)
        if self.discovery is None:
            raise Permanent("no_discovery", "no SML/SMP discovery configured and no fixed endpoint")
        try:
            with tracing.span("smp.discovery", **{"peppol.receiver": job.receiver}):
                route = await self.discovery.find_endpoint(
                    smp.ParticipantId.parse(job.receiver),
                    smp.DocumentTypeId.parse(job.document_type),
                    smp.ProcessId.parse(job.process),
                )
        except smp.DiscoveryError as exc:
            raise outcome.discovery_failure(exc) from None
        return route.endpoint.url, route.endpoint.certificate

    async def deliver(self, job: queries.OutboundJob) -> None:
        """Deliver a claimed job, continuing the trace of its submission, its lease renewed
        while it runs."""
        heartbeat = asyncio.create_task(self._heartbeat(job))
        try:
            await self._traced(job)
        finally:
            heartbeat.cancel()
            await asyncio.wait([heartbeat])  # not raising the heartbeat's cancellation

    async def _heartbeat(self, job: queries.OutboundJob) -> None:
        """Extend the job's lease every third of it while this worker still holds the claim."""
        assert job.claim is not None
        every = self.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                held = await queries.renew_outbound(self.pool, job.id, job.claim, self.lease_seconds)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbound_lease_not_renewed", job=job.id, attempt=job.attempts, error=type(exc).__name__)
                continue
            if not held:
                log.warning("outbound_lease_lost", job=job.id, attempt=job.attempts)
                return

    async def _traced(self, job: queries.OutboundJob) -> None:
        with (
            tracing.continued(job.trace_context),
            tracing.span(
                "outbound.deliver", **{"peppol.document_id": f"s{job.id}", "as4.message_id": job.as4_message_id,
                                       "peppol.receiver": job.receiver, "peppol.attempt": job.attempts},
            ),
        ):  # fmt: skip
            await self._deliver(job)

    async def _deliver(self, job: queries.OutboundJob) -> None:
        endpoint_url: str | None = job.endpoint_url
        receiver_ap: str | None = None
        try:
            endpoint_url, receiver_cert = await self._route(job)
            receiver_ap = as4.seat_id(receiver_cert)
            try:
                await self.trust.check(receiver_cert)
            except as4.FailedAuthentication as exc:
                raise Permanent("receiver_certificate_untrusted", exc.reason) from None
            admission = await self.guard.admit(endpoint_url)
            if admission.wait > 0:
                await self._defer(job, admission)
                return
            transport_failure = False
            try:
                receipt, evidence, header = await self._send(job, endpoint_url, receiver_cert, receiver_ap)
            except as4.SendError as exc:
                transport_failure = not isinstance(exc, as4.EbmsErrorReceived) and exc.retryable
                raise
            finally:
                await self._endpoint_finished(endpoint_url, admission, transport_failure)
        except as4.EbmsErrorReceived as exc:
            if outcome.is_duplicate(exc):
                done = outcome.Delivered("the receiver reports a duplicate: delivered earlier")
                await self._mark(job, done.state, done.reason, endpoint_url=endpoint_url, receiver_ap=receiver_ap,
                                 exchanged_at=datetime.now(UTC))  # fmt: skip
                return
            await self._failed(job, exc, endpoint_url, receiver_ap)
            return
        except Exception as exc:
            if outcome.failure_of(exc) is None:
                raise
            await self._failed(job, exc, endpoint_url, receiver_ap)
            return
        try:
            if not await self._mark(
                job, OutboundState.DELIVERED, f"receipt {receipt.message_id} verified",
                receipt=receipt.raw, sent_message=evidence,
                endpoint_url=endpoint_url, receiver_ap=receiver_ap, exchanged_at=header.timestamp,
                trace_context=tracing.traceparent(),
            ):  # fmt: skip
                return
        finally:
            if isinstance(evidence, Spool):
                evidence.remove()
        log.info("outbound_delivered", job=job.id, receiver=job.receiver, attempts=job.attempts)
        self._count(OutboundState.DELIVERED, "ok")

    async def _defer(self, job: queries.OutboundJob, admission: Admission) -> None:
        """Put the job back without counting the attempt: its endpoint is not taking it now."""
        check_move(OutboundState.SENDING, OutboundState.RETRYING)
        await queries.defer_outbound(
            self.pool, job.id, job.claim, datetime.now(UTC) + timedelta(seconds=admission.wait),
            f"waiting: {admission.reason}", audit=admission.state is not CircuitState.CLOSED,
        )  # fmt: skip

    async def _failed(
        self, job: queries.OutboundJob, exc: Exception, endpoint_url: str | None, receiver_ap: str | None
    ) -> None:
        """Record a failed attempt: the job fails, or is retried after its backoff."""
        error = outcome.failure_of(exc)
        assert isinstance(error, DeliveryError)
        if job.fallback_receiver is not None:
            decided_first = outcome.after_failure(
                error, attempts=job.attempts, give_up_at=job.give_up_at, now=datetime.now(UTC), delay=0.0
            )
            if outcome.turns_to_fallback(error, decided_first):
                await self._fallback(job, error)
                return
        error = outcome.for_kind(error, job.kind)
        decided = outcome.after_failure(
            error, attempts=job.attempts, give_up_at=job.give_up_at, now=datetime.now(UTC),
            delay=self.backoff(job.attempts),
        )  # fmt: skip
        if isinstance(decided, outcome.Retry):
            if not await self._mark(
                job,
                decided.state,
                decided.reason,
                next_attempt_at=decided.next_attempt_at,
                error_code=decided.code,
                endpoint_url=endpoint_url,
                receiver_ap=receiver_ap,
            ):
                return  # fmt: skip
            log.info("outbound_retry", job=job.id, attempt=job.attempts, delay=decided.delay, reason=error.reason)
        else:
            if not await self._mark(
                job,
                decided.state,
                decided.reason,
                error_code=decided.code,
                endpoint_url=endpoint_url,
                receiver_ap=receiver_ap,
            ):
                return  # fmt: skip
            if decided.gave_up:
                log.info("outbound_gave_up", job=job.id, attempts=job.attempts, reason=error.reason)
            else:
                log.info("outbound_failed", job=job.id, code=decided.code, reason=decided.reason)
        self._count(decided.state, decided.code)

    async def _fallback(self, job: queries.OutboundJob, error: DeliveryError) -> None:
        """Send the job to its fallback receiver from now on (an MLS whose MLS_TO cannot be
        resolved or refuses it goes to the sending provider's SPID)."""
        check_move(OutboundState.SENDING, OutboundState.RETRYING)
        reason = f"{job.receiver} cannot take it: {error.reason}"
        if await queries.use_fallback(self.pool, job.id, job.claim, error.code, reason):
            log.info("outbound_fallback", job=job.id, receiver=job.receiver, to=job.fallback_receiver, code=error.code)
            self._count(OutboundState.RETRYING, "fallback")
            self.wake()

    async def _mark(self, job: queries.OutboundJob, state: OutboundState, reason: str, **fields: Any) -> bool:
        """Record the outcome of this attempt (a claimed job is sending); False, and nothing
        written, when this worker lost its claim and a newer attempt owns the job."""
        check_move(OutboundState.SENDING, state)
        if self._chained and not isinstance(fields.get("sent_message"), Spool):
            applied, following = await queries.mark_and_claim_next(
                self.pool, job.id, state, reason, claim=job.claim, lease_seconds=self.lease_seconds, **fields
            )
            if following is not None:
                self._next.append(following)
        else:
            applied = await queries.mark_outbound(self.pool, job.id, state, reason, claim=job.claim, **fields)
        if applied:
            return True
        log.warning("outbound_outcome_fenced", job=job.id, attempt=job.attempts, state=state, reason=reason)
        return False

    async def _endpoint_finished(self, url: str, admission: Admission, transport_failure: bool) -> None:
        """Tell the shared circuit how the delivery went; a database hiccup here must not
        change the job's outcome."""
        try:
            await self.guard.finished(url, admission, transport_failure=transport_failure)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("endpoint_circuit_not_recorded", endpoint=url, error=type(exc).__name__)

    def _header(self, job: queries.OutboundJob, envelope: Envelope, receiver_ap: str) -> as4.UserMessageHeader:
        return as4.UserMessageHeader(
            message_id=job.as4_message_id,
            conversation_id=job.conversation_id,
            timestamp=datetime.now(UTC),
            from_party=self.identity.seat_id,
            to_party=receiver_ap,
            service=envelope.process,
            service_type=envelope.process_scheme,
            action=envelope.action,
            original_sender=envelope.sender,
            final_recipient=envelope.receiver,
        )

    async def _send(
        self, job: queries.OutboundJob, endpoint_url: str, receiver_cert: x509.Certificate, receiver_ap: str
    ) -> tuple[as4.Receipt, bytes | Spool, as4.UserMessageHeader]:
        """Build the AS4 message for a job and send it; the verified receipt and the message
        sent (its MIME body, the evidence), or SendError. A large document is streamed."""
        if job.sbd is None:
            return await self._send_streamed(job, endpoint_url, receiver_cert, receiver_ap)
        envelope, _ = read_sbd(job.sbd)
        header = self._header(job, envelope, receiver_ap)
        message = as4.build_user_message(
            header,
            job.sbd,
            signing_key=self.identity.key,
            signing_cert=self.identity.cert,
            receiver_cert=receiver_cert,
        )
        assert self._session is not None
        with tracing.span("as4.send", **{"as4.message_id": job.as4_message_id, "url.full": endpoint_url}) as current:
            receipt = await as4.send_message(
                self._session, endpoint_url, message, receiver_cert=receiver_cert, timeout=self.send_timeout
            )
            current.set_attribute("as4.receipt_id", receipt.message_id)
        return receipt, bytes(message.body), header

    async def _send_streamed(
        self, job: queries.OutboundJob, endpoint_url: str, receiver_cert: x509.Certificate, receiver_ap: str
    ) -> tuple[as4.Receipt, Spool, as4.UserMessageHeader]:
        """:meth:`_send` for a large document, never held whole: the SBD is copied out of the
        database into a spool file (COPY TO STDOUT), its envelope read from a skeleton, the
        message built by :class:`as4.MessageWriter` into a temporary file (in a thread: gzip
        and AES over a hundred megabytes take seconds) and sent from it; the message sent is
        kept as a spool file for the caller to store as evidence and remove."""
        sbd = await documents_queries.spool_document(self.pool, job.document_sha256)
        if sbd is None:
            raise Permanent("document_missing", "the document to send is no longer stored")
        try:
            with tempfile.TemporaryFile() as attachment:
                header, frame = await asyncio.to_thread(self._build_streamed, job, sbd, receiver_ap, receiver_cert,
                                                        attachment)  # fmt: skip
                assert self._session is not None
                span = {"as4.message_id": job.as4_message_id, "url.full": endpoint_url}
                with tracing.span("as4.send", **span) as current:
                    receipt = await as4.send_message(
                        self._session, endpoint_url, frame, receiver_cert=receiver_cert,
                        timeout=self.send_timeout + frame.size / LARGE_SEND_BYTES_PER_SECOND, attachment=attachment,
                    )  # fmt: skip
                    current.set_attribute("as4.receipt_id", receipt.message_id)
                evidence = await asyncio.to_thread(_evidence, frame, attachment)
        finally:
            sbd.remove()
        log.info("outbound_streamed", job=job.id, document_bytes=sbd.size, message_bytes=frame.size)
        return receipt, evidence, header

    def _build_streamed(
        self, job: queries.OutboundJob, sbd: Spool, receiver_ap: str, receiver_cert: x509.Certificate,
        attachment: IO[bytes],
    ) -> tuple[as4.UserMessageHeader, as4.StreamedFrame]:  # fmt: skip
        envelope, _ = read_sbd(skeleton_of(sbd.chunks()))
        header = self._header(job, envelope, receiver_ap)
        writer = as4.MessageWriter(
            header, signing_key=self.identity.key, signing_cert=self.identity.cert, receiver_cert=receiver_cert
        )
        for chunk in sbd.chunks():
            attachment.write(writer.feed(chunk))
        last, frame = writer.finish()
        attachment.write(last)
        attachment.flush()
        return frame.header, frame

    def _count(self, outcome: str, code: str) -> None:
        if self.metrics is not None:
            self.metrics.inc(
                "peppol_outbound_attempts_total", "Outbound delivery attempts by outcome", outcome=outcome, code=code
            )
