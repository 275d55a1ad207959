"""``POST /as4``: receive a Peppol AS4 message from another access point.

Parse, decrypt and verify (``as4``), trust the signer (chain, validity, revocation), read the
envelope and check it agrees with the AS4 header, check we serve the receiver, then store
everything in one transaction and only after the commit answer with the signed receipt. Every
refusal is an ebMS Error signal, signed with our key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog
from aiohttp import web
from lxml import etree
from opentelemetry import trace

import as4
from gateway.core import tracing
from gateway.core.metrics import Metrics
from gateway.documents.business import BusinessDocument
from gateway.documents.content import read_content
from gateway.documents.envelope import Envelope, SbdhError, read_sbd
from gateway.documents.spool import Spool, SpoolWriter, skeleton_of
from gateway.duties.responses import read_document
from gateway.inbound import queries
from gateway.security.identity import ApIdentity
from gateway.security.trust import CertificateTrust

__all__ = ["InboundEndpoint"]

log = structlog.get_logger("gateway.inbound.endpoint")

SOAP_TYPE = "application/soap+xml"
_OFFLOAD_BYTES = 2 * 1024 * 1024  # parse bigger messages in a thread, off the event loop
_OFFLOAD_CONTENT_BYTES = 256 * 1024  # read bigger documents' content views in a thread (~1 ms per 10 KB)


def _split_participant(value: str, scheme: str) -> tuple[str, str]:
    return scheme, value.lower()


# The receiving companies' inbound validation policies (companies.inbound_validation).
VALIDATION_POLICIES = ("off", "warn", "reject")


def after_receipt(kind: str, mls_type: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the receiving company's inbound validation policy means for a received message of
    ``kind``: the policies under which it is held out of the mailbox until the inbound
    processor validated it (``reject``), and those under which the processor has work with it
    (validation by the company's policy, a Message Level Status when one is due (never for an
    MLS or MLR), linking an answer to what it answers). Nothing to do keeps the fast path."""
    held, processing = [], []
    always_mls = mls_type == "ALWAYS_SEND" and kind not in ("mls", "mlr")
    for policy in VALIDATION_POLICIES:
        validate = policy != "off" and kind in ("business", "response")
        if validate and policy == "reject":
            held.append(policy)
        if validate or always_mls or kind in ("response", "mls", "mlr"):
            processing.append(policy)
    return tuple(held), tuple(processing)


def check_envelope(header: as4.UserMessageHeader, envelope: Envelope) -> None:
    """Peppol AS4 §4.1 / Envelope A.3: the SBDH and the AS4 header must say the same."""
    if envelope.sender.lower() != header.original_sender.lower():
        raise as4.OtherError(f"SBDH sender {envelope.sender} is not originalSender {header.original_sender}")
    if envelope.receiver.lower() != header.final_recipient.lower():
        raise as4.OtherError(f"SBDH receiver {envelope.receiver} is not finalRecipient {header.final_recipient}")
    if envelope.action != header.action:
        raise as4.OtherError(f"SBDH document type {envelope.action} is not eb:Action {header.action}")
    if envelope.process != header.service or envelope.process_scheme != header.service_type:
        raise as4.OtherError(f"SBDH process {envelope.process} is not eb:Service {header.service}")


class InboundEndpoint:
    """The AS4 receiving endpoint of one access point."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        identity: ApIdentity,
        trust: CertificateTrust,
        *,
        max_message_bytes: int,
        max_payload_bytes: int,
        metrics: Metrics | None = None,
        on_pending: Callable[[], None] | None = None,
    ) -> None:
        self.on_pending = on_pending
        self.metrics = metrics
        self.pool = pool
        self.identity = identity
        self.trust = trust
        self.max_message_bytes = max_message_bytes
        self.max_payload_bytes = max_payload_bytes

    def _error(self, error: as4.As4Error, ref: str | None, status: int = 200) -> web.Response:
        body = as4.build_error_signal([error], ref, key=self.identity.key, cert=self.identity.cert)
        log.info("as4_refused", code=error.code, reason=error.reason, ref_to_message_id=ref)
        if self.metrics is not None:
            self.metrics.inc("peppol_as4_received_total", "Inbound AS4 messages by outcome", outcome=error.code)
        return web.Response(status=status, body=body, content_type=SOAP_TYPE, charset="utf-8")

    async def _read_body(self, request: web.Request) -> bytes | Spool | None:
        """The body, in memory when small, else in a spool file written as it arrives; None as
        soon as it is known to be larger than the limit (a Content-Length saying so is refused
        before anything is read; a body without one is cut off at the limit)."""
        if request.content_length is not None and request.content_length > self.max_message_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        spool: SpoolWriter | None = None
        try:
            async for chunk in request.content.iter_chunked(256 * 1024):
                size += len(chunk)
                if size > self.max_message_bytes:
                    if spool is not None:
                        spool.discard()
                    return None
                if spool is not None:
                    spool.write(chunk)
                    continue
                chunks.append(chunk)
                if size > _OFFLOAD_BYTES:
                    spool = SpoolWriter()
                    for held in chunks:
                        spool.write(held)
                    chunks = []
        except BaseException:
            if spool is not None:
                spool.discard()
            raise
        return spool.close() if spool is not None else b"".join(chunks)

    async def handle(self, request: web.Request) -> web.Response:
        with tracing.span("as4.receive", **{"http.request.body.size": request.content_length}):
            return await self._handle(request)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await self._read_body(request)
        if body is None:
            return self._error(as4.OtherError(f"message larger than {self.max_message_bytes} bytes"), None, 413)
        content_type = request.headers.get("Content-Type", "")
        if isinstance(body, Spool):
            return await self._handle_spooled(body, content_type)
        try:
            if len(body) > _OFFLOAD_BYTES:
                received = await asyncio.to_thread(self._parse, body, content_type)
            else:
                received = self._parse(body, content_type)
        except as4.As4Error as exc:
            return self._error(exc, None)
        self._annotate(received)
        try:
            return await self._accept(received, body, received.payload or b"", None)
        except as4.As4Error as exc:
            return self._error(exc, received.header.message_id)

    async def _handle_spooled(self, body: Spool, content_type: str) -> web.Response:
        """A large message: parsed from its spool file in a thread, the payload spooled too
        and only its skeleton parsed; both streamed into the database."""
        payload: Spool | None = None
        try:
            try:
                received, spooled, root = await asyncio.to_thread(self._parse_spooled, body, content_type)
            except as4.As4Error as exc:
                return self._error(exc, None)
            payload = spooled
            self._annotate(received)
            try:
                return await self._accept(received, body, spooled, root)
            except as4.As4Error as exc:
                return self._error(exc, received.header.message_id)
        finally:
            body.remove()
            if payload is not None:
                payload.remove()

    def _parse_spooled(
        self, body: Spool, content_type: str
    ) -> tuple[as4.ReceivedMessage, Spool, etree._Element | None]:
        reader = as4.MessageReader(
            content_type, our_key=self.identity.key, our_cert=self.identity.cert,
            max_payload_bytes=self.max_payload_bytes,
        )  # fmt: skip
        out = SpoolWriter()
        try:
            for chunk in body.chunks():
                for plain in reader.feed(chunk):
                    out.write(plain)
            received, rest = reader.finish()
            for plain in rest:
                out.write(plain)
        except BaseException:
            out.discard()
            raise
        payload = out.close()
        try:
            root: etree._Element | None = skeleton_of(payload.chunks())
        except ValueError:
            root = None  # refused as not a valid envelope, after the duplicate check
        return received, payload, root

    def _annotate(self, received: as4.ReceivedMessage) -> None:
        current = trace.get_current_span()
        current.set_attribute("as4.message_id", received.header.message_id)
        current.set_attribute("peppol.sending_ap", received.header.from_party)

    def _duplicate_receipt(self, received: as4.ReceivedMessage, first: bytes, fresh: bytes | None = None) -> bytes:
        """The same message again gets the first receipt. A resend by the sender (same MessageId,
        rebuilt, so its header digests differ) gets a receipt for what it sent this time
        (``fresh``, when built already), so it can verify it; nothing is stored either way."""
        try:
            earlier = as4.parse_signal(first, SOAP_TYPE).digests if first else {}  # empty: archived
        except as4.As4Error:
            earlier = {}
        if earlier == {r.uri: r.digest for r in received.references}:
            return first
        return fresh or as4.build_receipt(received, self.identity.key, self.identity.cert)

    def _duplicate(self, received: as4.ReceivedMessage, first: bytes, fresh: bytes | None = None) -> web.Response:
        header = received.header
        log.info("as4_duplicate", message_id=header.message_id, sending_ap=header.from_party)
        return web.Response(
            body=self._duplicate_receipt(received, first, fresh), content_type=SOAP_TYPE, charset="utf-8"
        )

    def _parse(self, body: bytes, content_type: str) -> as4.ReceivedMessage:
        return as4.parse_user_message(
            body,
            content_type,
            our_key=self.identity.key,
            our_cert=self.identity.cert,
            max_payload_bytes=self.max_payload_bytes,
        )

    async def _accept(
        self,
        received: as4.ReceivedMessage,
        body: bytes | Spool,
        payload: bytes | Spool,
        root: etree._Element | None,
    ) -> web.Response:
        """Trust, envelope, then store, where the statement that stores also checks that the
        message is new and that we serve its receiver; ``root`` is the parsed payload when it
        was spooled (None: it did not parse)."""
        header = received.header
        await self.trust.check(received.signer_certificate)
        if header.to_party != self.identity.seat_id:
            raise as4.OtherError(f"eb:To/PartyId {header.to_party} is not this access point")
        receiver = (header.final_recipient_type, header.final_recipient.lower())
        if isinstance(payload, Spool):
            # A large message: nothing is copied into the database for a duplicate or for a
            # receiver we do not serve (the company is looked up by the header's document type
            # and process, which the envelope check requires to be the envelope's).
            arrival = await queries.arrival(
                self.pool, header.message_id, header.from_party, receiver, header.action,
                f"{header.service_type}::{header.service}",
            )  # fmt: skip
            if arrival.first_receipt is not None:
                return self._duplicate(received, arrival.first_receipt)
            envelope, business = self._envelope(header, payload, root)
            if arrival.company is None:
                raise self._not_serviced(header, envelope)
        else:
            try:
                envelope, business = self._envelope(header, payload, root)
            except as4.OtherError:
                # a message seen before gets its first receipt, whatever it says now
                first = await queries.find_inbound_receipt(self.pool, header.message_id, header.from_party)
                if first is not None:
                    return self._duplicate(received, first)
                raise
        receipt = as4.build_receipt(received, self.identity.key, self.identity.cert)
        read = read_document(business)
        held_when, processing_when = after_receipt(read.kind, envelope.mls_type)
        # The content view is read here, from the tree parsed for the envelope, and kept in the
        # same transaction as the document: a fraction of a millisecond for an ordinary invoice
        # next to decrypting and verifying it, and the mailbox entry is complete when it appears.
        parsed = BusinessDocument(business)
        if len(received.payload or b"") > _OFFLOAD_CONTENT_BYTES:
            content = await asyncio.to_thread(read_content, parsed)
        else:
            content = read_content(parsed)
        record = queries.InboundRecord(
            as4_message_id=header.message_id,
            sending_ap=header.from_party,
            sender_cert_subject=received.signer_certificate.subject.rfc4514_string(),
            conversation_id=header.conversation_id,
            sender=(header.original_sender_type, header.original_sender.lower()),
            receiver=receiver,
            document_type=envelope.action,
            process=f"{envelope.process_scheme}::{envelope.process}",
            country_c1=envelope.country_c1,
            instance_identifier=envelope.instance_identifier,
            sent_at=header.timestamp,
            document_id=read.document_id,
            kind=read.kind,
            held_when=held_when,
            processing_when=processing_when,
            mls_to=envelope.mls_to,
            mls_type=envelope.mls_type,
            trace_context=tracing.traceparent(),
            content=content,
        )
        with tracing.span("store.inbound", **{"as4.message_id": header.message_id}):
            outcome = await queries.store_inbound(self.pool, record, payload, body, receipt)
        if not outcome.serviced:
            raise self._not_serviced(header, envelope)
        if outcome.first_receipt is not None and not outcome.raced:
            return self._duplicate(received, outcome.first_receipt, receipt)
        stored = outcome.stored
        answer = receipt if stored else outcome.first_receipt or receipt  # raced: the first one's receipt
        if stored and outcome.processing and self.on_pending is not None:
            self.on_pending()
        if self.metrics is not None:
            self.metrics.inc(
                "peppol_as4_received_total", "Inbound AS4 messages by outcome",
                outcome="stored" if stored else "duplicate", document_type=envelope.action.rsplit("##", 1)[0],
            )  # fmt: skip
        log.info(
            "as4_received" if stored else "as4_duplicate",
            message_id=header.message_id,
            sending_ap=header.from_party,
            receiver=header.final_recipient,
            bytes=body.size if isinstance(body, Spool) else len(body),
        )
        return web.Response(body=answer, content_type=SOAP_TYPE, charset="utf-8")

    def _envelope(
        self, header: as4.UserMessageHeader, payload: bytes | Spool, root: etree._Element | None
    ) -> tuple[Envelope, etree._Element]:
        """The payload's envelope, which must agree with the AS4 header (as4.OtherError if not)."""
        try:
            if isinstance(payload, Spool):
                if root is None:
                    raise SbdhError("invalid-sbd-xml", "the payload is not well-formed XML")
                envelope, business = read_sbd(root, require_country=False)
            else:
                envelope, business = read_sbd(payload, require_country=False)
        except SbdhError as exc:
            raise as4.OtherError(f"the payload is not a valid Peppol envelope: {exc}") from None
        check_envelope(header, envelope)
        return envelope, business

    @staticmethod
    def _not_serviced(header: as4.UserMessageHeader, envelope: Envelope) -> as4.NotServiced:
        what = f"{envelope.action} in {envelope.process}"
        return as4.NotServiced(f"{header.final_recipient} does not receive {what} here")
