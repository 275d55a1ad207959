"""Outbound: turn a submitted document into a queued job, and deliver queued jobs over AS4.

Submission stores the envelope and the job in one transaction. Workers (any number, in any
number of processes) claim jobs with ``FOR UPDATE SKIP LOCKED``, find the receiver with
``smp``, build and send the AS4 message with ``as4``, verify the receipt, and record the
outcome with an audit line. Transient failures are retried with exponential backoff (tenacity's
wait strategy; the schedule lives in PostgreSQL so it survives restarts) until a time window
closes; permanent failures stop at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import structlog
import tenacity
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

import as4
import smp
from gateway.core import tracing
from gateway.core.lifecycle import Wakeup, run_loop
from gateway.core.metrics import Metrics
from gateway.documents.envelope import SbdhError, build_sbd, read_sbd
from gateway.duties.responses import read_document
from gateway.outbound import queries
from gateway.outbound.circuits import EndpointGuard
from gateway.security.identity import ApIdentity
from gateway.security.trust import CertificateTrust

__all__ = ["OutboundWorker", "SubmissionError", "derive_submission", "submit_document"]

log = structlog.get_logger("gateway.outbound.delivery")

_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
# Root element -> (sending party, receiving party) as UBL names them.
_PARTIES = {
    "Invoice": ("AccountingSupplierParty", "AccountingCustomerParty"),
    "CreditNote": ("AccountingSupplierParty", "AccountingCustomerParty"),
    "Order": ("BuyerCustomerParty", "SellerSupplierParty"),
    "OrderResponse": ("SellerSupplierParty", "BuyerCustomerParty"),
    "OrderChange": ("BuyerCustomerParty", "SellerSupplierParty"),
    "OrderCancellation": ("BuyerCustomerParty", "SellerSupplierParty"),
    "DespatchAdvice": ("DespatchSupplierParty", "DeliveryCustomerParty"),
    "Catalogue": ("ProviderParty", "ReceiverParty"),
    "ApplicationResponse": ("SenderParty", "ReceiverParty"),
    # the country of C1 is then taken from the party's address when it has one
}
NOTIFY_CHANNEL = "outbound_ready"


class SubmissionError(ValueError):
    """A document cannot be submitted; ``field`` names what is wrong or missing."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Derived:
    sbd: bytes
    sender: smp.ParticipantId
    receiver: smp.ParticipantId
    document_type: smp.DocumentTypeId
    process: smp.ProcessId
    country_c1: str
    instance_identifier: str
    document_id: str = ""
    kind: str = "business"


def _read_kind(doc: etree._Element) -> tuple[str, str]:
    """(document id, kind) of a business document, for linking answers and for reporting."""
    read = read_document(doc)
    return read.document_id, read.kind


def _party(doc: etree._Element, role: str) -> etree._Element | None:
    """The party in a role: wrapped in cac:Party (AccountingSupplierParty) or itself a party
    (a Catalogue's ProviderParty, an ApplicationResponse's SenderParty)."""
    holder = doc.find(f"{{{_CAC}}}{role}")
    if holder is None:
        return None
    party = holder.find(f"{{{_CAC}}}Party")
    return party if party is not None else holder


def _endpoint_id(party: etree._Element | None) -> str | None:
    if party is None:
        return None
    el = party.find(f"{{{_CBC}}}EndpointID")
    if el is None or not (el.text or "").strip() or not el.get("schemeID"):
        return None
    return f"{el.get('schemeID')}:{el.text.strip()}"  # type: ignore[union-attr]


def _country(party: etree._Element | None) -> str | None:
    if party is None:
        return None
    for path in (
        f"{{{_CAC}}}PostalAddress/{{{_CAC}}}Country/{{{_CBC}}}IdentificationCode",
        f"{{{_CAC}}}PartyLegalEntity/{{{_CAC}}}RegistrationAddress/{{{_CAC}}}Country/{{{_CBC}}}IdentificationCode",
    ):
        text = party.findtext(path)
        if text and text.strip():
            return text.strip().upper()
    return None


def derive_submission(
    document: bytes,
    *,
    sender: str | None = None,
    receiver: str | None = None,
    document_type: str | None = None,
    process: str | None = None,
    country_c1: str | None = None,
    mls_type: str | None = None,
) -> Derived:
    """Wrap a bare UBL document in a Peppol envelope (or take a ready SBD as it is), deriving
    what is not given: participants from the parties' EndpointIDs, the document type from the
    root element and CustomizationID, the process from ProfileID, C1's country from the sender's
    address. Raises :class:`SubmissionError` naming the field it could not determine."""
    from as4._xml import parse_xml

    try:
        root = parse_xml(document, "document", large=True)
    except as4.As4Error as exc:
        raise SubmissionError("document", exc.reason) from None
    try:
        if (
            root.tag
            == "{http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader}StandardBusinessDocument"
        ):
            envelope, business = read_sbd(document)
            assert envelope.country_c1 is not None  # required when reading for sending
            document_id, kind = _read_kind(business)
            return Derived(
                sbd=document,
                sender=smp.ParticipantId.parse(envelope.sender),
                receiver=smp.ParticipantId.parse(envelope.receiver),
                document_type=smp.DocumentTypeId.of(envelope.document_type_scheme, envelope.document_type),
                process=smp.ProcessId.of(envelope.process_scheme, envelope.process),
                country_c1=envelope.country_c1,
                instance_identifier=envelope.instance_identifier,
                document_id=document_id,
                kind=kind,
            )
    except SbdhError as exc:
        raise SubmissionError("document", f"invalid Peppol envelope: {exc}") from None
    except smp.IdentifierError as exc:
        raise SubmissionError(exc.field, str(exc)) from None

    namespace, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    sending_role, receiving_role = _PARTIES.get(local, (None, None))
    sending = _party(root, sending_role) if sending_role else None
    receiving = _party(root, receiving_role) if receiving_role else None
    sender = sender or _endpoint_id(sending)
    receiver = receiver or _endpoint_id(receiving)
    if not sender:
        raise SubmissionError("sender", "not given and no sender EndpointID in the document")
    if not receiver:
        raise SubmissionError("receiver", "not given and no receiver EndpointID in the document")
    if document_type is None:
        customization = (root.findtext(f"{{{_CBC}}}CustomizationID") or "").strip()
        if not customization or not namespace:
            raise SubmissionError("document_type", "not given and the document has no CustomizationID")
        version = (root.findtext(f"{{{_CBC}}}UBLVersionID") or "2.1").strip()
        document_type = f"{namespace}::{local}##{customization}::{version}"
    if mls_type not in (None, "FAILURE_ONLY", "ALWAYS_SEND"):
        raise SubmissionError("mls_type", "MLS type is FAILURE_ONLY or ALWAYS_SEND")
    process = process or (root.findtext(f"{{{_CBC}}}ProfileID") or "").strip() or None
    if not process:
        raise SubmissionError("process", "not given and the document has no ProfileID")
    country_c1 = country_c1 or _country(sending)
    if not country_c1:
        raise SubmissionError("country_c1", "not given and the sender has no country in the document")
    try:
        sender_id = smp.ParticipantId.parse(sender)
        receiver_id = smp.ParticipantId.parse(receiver)
        doc_id = smp.DocumentTypeId.parse(document_type)
        process_id = smp.ProcessId.parse(process)
    except smp.IdentifierError as exc:
        raise SubmissionError(exc.field.replace(" ", "_"), str(exc)) from None
    instance = str(uuid.uuid4())
    sbd = build_sbd(
        document,
        sender=sender_id.value,
        receiver=receiver_id.value,
        document_type=doc_id.value,
        document_type_scheme=doc_id.scheme,
        process=process_id.value,
        process_scheme=process_id.scheme,
        country_c1=country_c1,
        instance_identifier=instance,
        mls_type=mls_type,
    )
    document_id, kind = _read_kind(root)
    return Derived(sbd, sender_id, receiver_id, doc_id, process_id, country_c1, instance, document_id, kind)


async def submit_document(
    pool: asyncpg.Pool,
    derived: Derived,
    *,
    retry_window: float,
    company_id: uuid.UUID | None = None,
    endpoint_url: str | None = None,
    endpoint_cert: x509.Certificate | None = None,
    answers_inbound_id: int | None = None,
    validation: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> int:
    """Queue a derived document for delivery; returns the job id. With ``conn`` the job joins
    the caller's transaction (and the caller wakes the workers after its commit)."""
    submission = queries.OutboundSubmission(
        sender=str(derived.sender),
        receiver=str(derived.receiver),
        document_type=str(derived.document_type),
        process=str(derived.process),
        country_c1=derived.country_c1,
        instance_identifier=derived.instance_identifier,
        sbd=derived.sbd,
        as4_message_id=as4.new_message_id("peppol-gateway"),
        conversation_id=str(uuid.uuid4()),
        give_up_at=datetime.now(UTC) + timedelta(seconds=retry_window),
        company_id=company_id,
        endpoint_url=endpoint_url,
        endpoint_cert=endpoint_cert.public_bytes(Encoding.DER) if endpoint_cert else None,
        document_id=derived.document_id or None,
        kind=derived.kind,
        answers_inbound_id=answers_inbound_id,
        validation=validation,
        trace_context=tracing.traceparent(),
    )
    job_id = await queries.submit_outbound(conn if conn is not None else pool, submission)
    await (conn if conn is not None else pool).execute(f"NOTIFY {NOTIFY_CHANNEL}")
    return job_id


class Permanent(Exception):
    """Delivery cannot succeed by trying again."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Transient(Exception):
    """Delivery may succeed later."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_DISCOVERY_CODES: dict[type[Exception], str] = {
    smp.NotRegistered: "receiver_not_registered",
    smp.ParticipantUnknown: "receiver_unknown",
    smp.DocumentTypeNotSupported: "document_type_not_supported",
    smp.EndpointNotActive: "endpoint_not_active",
    smp.SignatureInvalid: "smp_signature_invalid",
    smp.UntrustedSmpCertificate: "smp_untrusted",
    smp.DnsFailure: "dns_failure",
    smp.SmpUnavailable: "smp_unavailable",
}


def _discovery_code(exc: smp.DiscoveryError) -> str:
    for cls in type(exc).__mro__:
        if cls in _DISCOVERY_CODES:
            return _DISCOVERY_CODES[cls]
    return "discovery_failed"


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
        lease_seconds: float = 300.0,
        guard: EndpointGuard | None = None,
    ) -> None:
        self.guard = guard or EndpointGuard()
        self.lease_seconds = lease_seconds
        self.metrics = metrics
        self.pool = pool
        self.identity = identity
        self.trust = trust
        self.discovery = discovery
        self.wait = tenacity.wait_exponential(multiplier=retry_initial, min=retry_initial, max=retry_max)
        self.poll_interval = poll_interval
        self.send_timeout = send_timeout
        # One permit per "there is work" signal: a notification wakes one idle worker, which
        # then keeps claiming until the queue is empty (waking all of them would only make
        # the others run empty claims).
        self._work = Wakeup()
        self._session: aiohttp.ClientSession | None = None

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (tenacity's schedule)."""
        state = tenacity.RetryCallState(retry_object=tenacity.AsyncRetrying(), fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        return float(self.wait(state))

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
        try:
            await asyncio.gather(
                *(
                    run_loop("outbound.delivery", self.run_once, stop, interval=self.poll_interval, wake=self._work)
                    for _ in range(concurrency)
                )
            )
        finally:
            await self._session.close()
            if listener is not None:
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await listener.remove_listener(NOTIFY_CHANNEL, on_notify)
                await self.pool.release(listener)

    async def deliver_now(self, job_id: int) -> bool:
        """Deliver one given job in this process (False if a worker elsewhere already took it)."""
        job = await queries.claim_outbound(self.pool, job_id=job_id)
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
            if status.state not in ("queued", "sending") or asyncio.get_running_loop().time() > deadline:
                return status
            await asyncio.sleep(0.1)

    async def run_once(self) -> bool:
        """Claim and deliver one job; False when there was nothing to do."""
        job = await queries.claim_outbound(self.pool, self.lease_seconds)
        if job is None:
            return False
        try:
            await self.deliver(job)
        except asyncio.CancelledError:
            # Stopping with a delivery in flight: give the job back now instead of leaving it
            # to its lease (the receiver answers a resend of a delivered message as a duplicate).
            await asyncio.shield(queries.release_outbound(self.pool, job.id, "released: the gateway stopped"))
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
            if exc.retryable:
                raise Transient(_discovery_code(exc), str(exc)) from None
            raise Permanent(_discovery_code(exc), str(exc)) from None
        return route.endpoint.url, route.endpoint.certificate

    async def deliver(self, job: queries.OutboundJob) -> None:
        """Deliver a claimed job, continuing the trace of its submission."""
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
            wait = await self.guard.admit(endpoint_url)
            if wait > 0:
                state = self.guard.circuits[endpoint_url].state
                reason = "circuit open" if state != "closed" else "endpoint at its concurrency limit"
                await queries.defer_outbound(
                    self.pool, job.id, datetime.now(UTC) + timedelta(seconds=wait), f"waiting: {reason}",
                    audit=state != "closed",
                )  # fmt: skip
                return
            transport_failure = False
            try:
                receipt, message, header = await self._send(job, endpoint_url, receiver_cert, receiver_ap)
            except as4.SendError as exc:
                transport_failure = not isinstance(exc, as4.EbmsErrorReceived) and exc.retryable
                raise
            finally:
                await self._endpoint_finished(endpoint_url, transport_failure)
        except as4.EbmsErrorReceived as exc:
            if any(e.code == "EBMS:4001" for e in exc.errors):
                await queries.mark_outbound(
                    self.pool, job.id, "delivered", "the receiver reports a duplicate: delivered earlier",
                    endpoint_url=endpoint_url, receiver_ap=receiver_ap, exchanged_at=datetime.now(UTC),
                )  # fmt: skip
                return
            failures = [e for e in exc.errors if e.severity.lower() == "failure"]
            code = "ebms_" + failures[0].code.replace("EBMS:", "") if failures else "ebms_warning"
            if failures:
                await self._fail(job, code, str(exc), endpoint_url, receiver_ap)
            else:
                await self._retry_or_give_up(job, Transient(code, str(exc)), endpoint_url, receiver_ap)
            return
        except as4.SendError as exc:
            await self._retry_or_give_up(job, Transient(type(exc).__name__, str(exc)), endpoint_url, receiver_ap)
            return
        except as4.As4Error as exc:  # an invalid receipt: the document may have arrived
            await self._retry_or_give_up(job, Transient("invalid_receipt", exc.reason), endpoint_url, receiver_ap)
            return
        except Permanent as exc:
            await self._fail(job, exc.code, exc.reason, endpoint_url, receiver_ap)
            return
        except Transient as exc:
            await self._retry_or_give_up(job, exc, endpoint_url, receiver_ap)
            return
        except (SbdhError, smp.IdentifierError) as exc:
            await queries.mark_outbound(self.pool, job.id, "failed", str(exc), error_code="invalid_document")
            return
        await queries.mark_outbound(
            self.pool, job.id, "delivered", f"receipt {receipt.message_id} verified",
            receipt=receipt.raw, sent_message=bytes(message.body),
            endpoint_url=endpoint_url, receiver_ap=receiver_ap, exchanged_at=header.timestamp,
            trace_context=tracing.traceparent(),
        )  # fmt: skip
        log.info("outbound_delivered", job=job.id, receiver=job.receiver, attempts=job.attempts)
        self._count("delivered", "ok")

    async def _fail(
        self, job: queries.OutboundJob, code: str, reason: str, endpoint_url: str | None, receiver_ap: str | None
    ) -> None:
        await queries.mark_outbound(
            self.pool, job.id, "failed", reason, error_code=code, endpoint_url=endpoint_url, receiver_ap=receiver_ap
        )
        log.info("outbound_failed", job=job.id, code=code, reason=reason)
        self._count("failed", code)

    async def _endpoint_finished(self, url: str, transport_failure: bool) -> None:
        changed = self.guard.finished(url, transport_failure=transport_failure)
        if changed is None:
            return
        circuit = self.guard.circuits[url]
        log.warning("endpoint_circuit", endpoint=url, state=changed, failures=circuit.failures)
        try:
            await queries.record_circuit(self.pool, url, changed, circuit.failures, circuit.cooldown)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("endpoint_circuit_not_recorded", error=type(exc).__name__)

    async def _send(
        self, job: queries.OutboundJob, endpoint_url: str, receiver_cert: x509.Certificate, receiver_ap: str
    ) -> tuple[as4.Receipt, as4.BuiltMessage, as4.UserMessageHeader]:
        """Build the AS4 message for a job and send it; the verified receipt, or SendError."""
        envelope, _ = read_sbd(job.sbd)
        header = as4.UserMessageHeader(
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
        return receipt, message, header

    def _count(self, outcome: str, code: str) -> None:
        if self.metrics is not None:
            self.metrics.inc(
                "peppol_outbound_attempts_total", "Outbound delivery attempts by outcome", outcome=outcome, code=code
            )

    async def _retry_or_give_up(
        self,
        job: queries.OutboundJob,
        exc: Transient,
        endpoint_url: str | None,
        receiver_ap: str | None,
    ) -> None:
        delay = self.backoff(job.attempts)
        next_at = datetime.now(UTC) + timedelta(seconds=delay)
        if next_at > job.give_up_at:
            await queries.mark_outbound(
                self.pool, job.id, "failed",
                f"gave up after {job.attempts} attempts: {exc.reason}", error_code=exc.code,
                endpoint_url=endpoint_url, receiver_ap=receiver_ap,
            )  # fmt: skip
            log.info("outbound_gave_up", job=job.id, attempts=job.attempts, reason=exc.reason)
            self._count("failed", exc.code)
            return
        await queries.mark_outbound(
            self.pool, job.id, "retrying", f"{exc.reason}; next attempt in {delay:.1f}s",
            next_attempt_at=next_at, error_code=exc.code,
            endpoint_url=endpoint_url, receiver_ap=receiver_ap,
        )  # fmt: skip
        log.info("outbound_retry", job=job.id, attempt=job.attempts, delay=delay, reason=exc.reason)
        self._count("retrying", exc.code)
