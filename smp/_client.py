"""The SMP client: SML lookup, fetch, verify, choose the AS4 endpoint; cached and single-flight.

Positive and negative answers are cached with their own TTL in a bounded LRU. Concurrent lookups
of the same (participant, document type, process) share one DNS query and one SMP fetch. The
same cache serves the questions a receiver check asks: a participant's ServiceGroup, the verified
metadata of each document type it lists, and its Peppol Directory business card.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509

from smp._businesscard import BusinessCard, parse_business_card
from smp._errors import DiscoveryError
from smp._identifiers import DocumentTypeId, ParticipantId, ProcessId
from smp._metadata import (
    AS4_TRANSPORT,
    Endpoint,
    MetadataError,
    Redirect,
    ServiceMetadata,
    parse_service_group,
    verify_signed_service_metadata,
)
from smp._sml import SmlLookup, SmpLocation, check_endpoint_url, check_smp_url
from smp._tls import tls_context

__all__ = [
    "DocumentTypeNotSupported",
    "EndpointNotActive",
    "ParticipantUnknown",
    "Route",
    "ServiceGroupInfo",
    "SmpClient",
    "SmpUnavailable",
    "VerifiedService",
    "match_registration",
]

MAX_SMP_RESPONSE = 4 * 1024 * 1024
T = TypeVar("T")


class ParticipantUnknown(DiscoveryError):
    """The SMP does not know the participant."""


class DocumentTypeNotSupported(DiscoveryError):
    """The participant does not receive this document type / process over Peppol AS4."""


class EndpointNotActive(DiscoveryError):
    """The only matching endpoints are expired or not yet active."""


class SmpUnavailable(DiscoveryError):
    """The SMP could not be reached or answered with a server error."""

    retryable = True


@dataclass(frozen=True)
class Route:
    """Where and how to deliver one document type to one participant."""

    participant: ParticipantId
    document_type: DocumentTypeId
    process: ProcessId
    dns_name: str
    smp_url: str
    metadata_url: str
    endpoint: Endpoint
    smp_certificate: x509.Certificate
    steps: list[str] = field(default_factory=list, compare=False)
    supported: tuple[DocumentTypeId, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ServiceGroupInfo:
    """Where a participant's SMP is and the document types its ServiceGroup lists."""

    participant: ParticipantId
    dns_name: str
    smp_url: str
    document_types: tuple[DocumentTypeId, ...]


@dataclass(frozen=True)
class VerifiedService:
    """One document type's signed metadata, verified (signature and SMP certificate)."""

    participant: ParticipantId
    document_type: DocumentTypeId  # as registered (a wildcard registration when one matched)
    metadata_url: str
    metadata: ServiceMetadata
    smp_certificate: x509.Certificate
    steps: tuple[str, ...] = ()


def _wildcard_matches(registration: str, wanted: str) -> int:
    """How many customization parts of ``wanted`` a wildcard registration covers (0: none)."""
    reg_custom = registration.split("##", 1)[1].rsplit("::", 1)[0]
    want_custom = wanted.split("##", 1)[1].rsplit("::", 1)[0]
    if registration.split("##", 1)[0] != wanted.split("##", 1)[0]:
        return 0
    if registration.rsplit("::", 1)[1] != wanted.rsplit("::", 1)[1]:
        return 0
    if not reg_custom.endswith("*"):
        return 0
    reg_parts = reg_custom[:-1].split("@")
    want_parts = want_custom.split("@")
    if want_parts[: len(reg_parts)] != reg_parts:
        return 0
    return len(reg_parts)


def _same_subject(uid: str, cert: x509.Certificate) -> bool:
    def norm(text: str) -> set[str]:
        return {p.strip().replace(" = ", "=").lower() for p in text.split(",") if p.strip()}

    return norm(uid) == norm(cert.subject.rfc4514_string())


def match_registration(wanted: DocumentTypeId, registered: Sequence[DocumentTypeId]) -> DocumentTypeId | None:
    """The registration that covers ``wanted``: the same identifier, else the most specific
    ``peppol-doctype-wildcard`` registration whose customization prefix matches."""
    for reg in registered:
        if reg == wanted:
            return reg
    best: tuple[int, DocumentTypeId] | None = None
    for reg in registered:
        if reg.scheme != "peppol-doctype-wildcard":
            continue
        score = _wildcard_matches(reg.value, wanted.value)
        if score and (best is None or score > best[0]):
            best = (score, reg)
    return None if best is None else best[1]


class SmpClient:
    """Resolve (participant, document type, process) to a verified AS4 endpoint."""

    def __init__(
        self,
        sml: SmlLookup,
        *,
        smp_trust: Sequence[x509.Certificate],
        session: aiohttp.ClientSession | None = None,
        ttl: float = 900.0,
        negative_ttl: float = 60.0,
        max_entries: int = 10_000,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sml = sml
        self.smp_trust = list(smp_trust)
        self._session = session
        self._own_session = session is None
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self.timeout = timeout
        self._clock = clock
        self._cache: OrderedDict[tuple[str, ...], tuple[float, object]] = OrderedDict()
        self._inflight: dict[tuple[str, ...], asyncio.Future[object]] = {}
        self.fetches = 0  # SMP HTTP requests sent (for tests and metrics)
        self.cache_hits = 0  # answers served from the cache

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # -- caching -----------------------------------------------------------------------------

    async def find_endpoint(
        self,
        participant: ParticipantId,
        document_type: DocumentTypeId,
        process: ProcessId | None = None,
    ) -> Route:
        """The route for sending; raises a :class:`DiscoveryError` subclass."""
        key = (participant.key, document_type.uri, process.uri if process else "")
        return await self._cached(key, lambda: self._discover(participant, document_type, process))

    async def locate(self, participant: ParticipantId) -> SmpLocation:
        """The participant's SMP through the SML (cached; ``NotRegistered`` for ``negative_ttl``)."""
        return await self._cached(("sml", participant.key), lambda: self.sml.locate(participant))

    async def participant_services(self, participant: ParticipantId) -> ServiceGroupInfo:
        """The participant's SMP and the document types it lists (cached)."""

        async def fetch() -> ServiceGroupInfo:
            location = await self.locate(participant)
            return ServiceGroupInfo(
                participant, location.dns_name, location.url, tuple(await self._service_group_at(location, participant))
            )

        return await self._cached(("group", participant.key), fetch)

    async def service(self, participant: ParticipantId, document_type: DocumentTypeId) -> VerifiedService:
        """The verified metadata of one document type the participant lists (cached);
        :class:`DocumentTypeNotSupported` when its SMP has none."""

        async def fetch() -> VerifiedService:
            location = await self.locate(participant)
            url = f"{location.url}/{participant.url_segment}/services/{document_type.url_segment}"
            fetched = await self._verified_metadata(location, participant, document_type, url)
            if fetched is None:
                raise DocumentTypeNotSupported(f"{participant} does not receive {document_type}")
            content, signer, steps = fetched
            return VerifiedService(participant, document_type, url, content, signer, tuple(steps))

        return await self._cached(("service", participant.key, document_type.uri), fetch)

    async def business_card(self, participant: ParticipantId) -> BusinessCard | None:
        """The participant's Peppol Directory business card from its SMP, ``None`` when the SMP
        publishes none (cached)."""

        async def fetch() -> BusinessCard | None:
            location = await self.locate(participant)
            status, body = await self._get(f"{location.url}/businesscard/{participant.url_segment}")
            if status in (404, 410):
                return None
            if status != 200:
                raise SmpUnavailable(f"SMP answered HTTP {status} for the business card")
            card = parse_business_card(body)
            if card.participant != participant:
                raise MetadataError(f"business card is for {card.participant}, not {participant}")
            return card

        return await self._cached(("card", participant.key), fetch)

    async def _cached(self, key: tuple[str, ...], produce: Callable[[], Awaitable[T]]) -> T:
        """``produce()`` once per key while its answer is fresh; concurrent callers share one
        run; a final failure is remembered for ``negative_ttl``, a passing one not at all."""
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None:
            expires, value = cached
            if now < expires:
                self.cache_hits += 1
                self._cache.move_to_end(key)
                if isinstance(value, DiscoveryError):
                    raise value
                return cast(T, value)
            del self._cache[key]
        pending = self._inflight.get(key)
        if pending is not None:
            return cast(T, await asyncio.shield(pending))
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await produce()
        except DiscoveryError as exc:
            if not exc.retryable:
                self._remember(key, exc, self.negative_ttl)
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters may be none
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        else:
            self._remember(key, result, self.ttl)
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    def _remember(self, key: tuple[str, ...], value: object, ttl: float) -> None:
        self._cache[key] = (self._clock() + ttl, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    def forget(self, participant: ParticipantId) -> None:
        """Drop cached answers for a participant (e.g. after a delivery failure)."""
        for key in [k for k in self._cache if participant.key in k[:2]]:
            del self._cache[key]

    # -- discovery ---------------------------------------------------------------------------

    async def _get(self, url: str) -> tuple[int, bytes]:
        self.fetches += 1
        try:
            async with self._http().get(
                url,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
                headers={"Accept": "application/xml, text/xml"},
                ssl=tls_context(),  # verified, TLS 1.2 or newer
            ) as response:
                body = await response.content.read(MAX_SMP_RESPONSE + 1)
                if len(body) > MAX_SMP_RESPONSE:
                    raise MetadataError(f"SMP answer from {url} is larger than {MAX_SMP_RESPONSE} bytes")
                return response.status, body
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SmpUnavailable(f"SMP {url} unreachable: {type(exc).__name__}: {exc}") from None

    async def service_group(self, participant: ParticipantId) -> tuple[str, list[DocumentTypeId]]:
        """The SMP URL and the document types the participant's ServiceGroup lists."""
        location = await self.sml.locate(participant)
        return location.url, await self._service_group_at(location, participant)

    async def _service_group_at(self, location: SmpLocation, participant: ParticipantId) -> list[DocumentTypeId]:
        status, body = await self._get(f"{location.url}/{participant.url_segment}")
        if status == 404:
            raise ParticipantUnknown(f"the SMP {location.url} does not know {participant}")
        if status != 200:
            raise SmpUnavailable(f"SMP answered HTTP {status} for the ServiceGroup")
        group_participant, doctypes = parse_service_group(body)
        if group_participant != participant:
            raise MetadataError(f"ServiceGroup is for {group_participant}, not {participant}")
        return doctypes

    async def _verified_metadata(
        self, location: SmpLocation, participant: ParticipantId, requested: DocumentTypeId, metadata_url: str
    ) -> tuple[ServiceMetadata, x509.Certificate, list[str]] | None:
        """Fetch and verify one SignedServiceMetadata, following one redirect; ``None`` when the
        SMP answers 404."""
        steps: list[str] = []
        status, body = await self._get(metadata_url)
        if status == 404:
            return None
        if status != 200:
            raise SmpUnavailable(f"SMP answered HTTP {status} for {metadata_url}")
        verified = verify_signed_service_metadata(body, self.smp_trust)
        steps += verified.steps
        content = verified.content
        signer = verified.signer
        if isinstance(content, Redirect):
            target = check_smp_url(content.href, self.sml.zone) if urlsplit(content.href).scheme else content.href
            steps.append(f"redirect to {target}")
            status, body = await self._get(target)
            if status != 200:
                raise SmpUnavailable(f"redirect target answered HTTP {status}")
            verified = verify_signed_service_metadata(body, self.smp_trust)
            steps += verified.steps
            if isinstance(verified.content, Redirect):
                raise MetadataError("the SMP redirected twice; only one redirect is followed")
            if content.certificate_uid and not _same_subject(content.certificate_uid, verified.signer):
                raise MetadataError("redirect target is signed by another certificate than announced")
            content, signer = verified.content, verified.signer
        assert isinstance(content, ServiceMetadata)
        if content.participant != participant:
            raise MetadataError(f"metadata is for {content.participant}, not {participant}")
        if content.document_type != requested:
            raise MetadataError(f"metadata is for {content.document_type}, not {requested}")
        return content, signer, steps

    async def _discover(
        self, participant: ParticipantId, document_type: DocumentTypeId, process: ProcessId | None
    ) -> Route:
        steps: list[str] = []
        location = await self.sml.locate(participant)
        steps.append(f"SML: {location.dns_name} -> {location.url}")
        requested = document_type
        supported: tuple[DocumentTypeId, ...] = ()
        if document_type.scheme == "peppol-doctype-wildcard":
            _, registered = await self.service_group(participant)
            supported = tuple(registered)
            requested = self._match_wildcard(document_type, registered)
            steps.append(f"wildcard registration chosen: {requested}")
        metadata_url = f"{location.url}/{participant.url_segment}/services/{requested.url_segment}"
        fetched = await self._verified_metadata(location, participant, requested, metadata_url)
        if fetched is None:
            if not supported:
                try:
                    _, registered = await self.service_group(participant)
                    supported = tuple(registered)
                except DiscoveryError:
                    supported = ()
                if not supported:
                    raise ParticipantUnknown(f"the SMP {location.url} does not know {participant}")
            raise DocumentTypeNotSupported(f"{participant} does not receive {document_type}")
        content, signer, verify_steps = fetched
        steps += verify_steps
        endpoint, chosen = self._choose(content, document_type, process)
        check_endpoint_url(endpoint.url, self.sml.zone)
        steps.append(f"endpoint: {endpoint.url} ({endpoint.transport_profile})")
        return Route(
            participant=participant,
            document_type=document_type,
            process=chosen,
            dns_name=location.dns_name,
            smp_url=location.url,
            metadata_url=metadata_url,
            endpoint=endpoint,
            smp_certificate=signer,
            steps=steps,
            supported=supported,
        )

    @staticmethod
    def _match_wildcard(wanted: DocumentTypeId, registered: Sequence[DocumentTypeId]) -> DocumentTypeId:
        match = match_registration(wanted, registered)
        if match is None:
            raise DocumentTypeNotSupported(f"no registration matches {wanted}")
        return match

    @staticmethod
    def _choose(
        metadata: ServiceMetadata, document_type: DocumentTypeId, process: ProcessId | None
    ) -> tuple[Endpoint, ProcessId]:
        entries = [p for p in metadata.processes if process is None or p.process == process]
        if not entries:
            raise DocumentTypeNotSupported(
                f"{metadata.participant} does not receive {document_type} in process {process}"
            )
        now = datetime.now(UTC)
        inactive = False
        for entry in entries:
            for endpoint in entry.endpoints:
                if endpoint.transport_profile != AS4_TRANSPORT:
                    continue
                if not endpoint.active_at(now):
                    inactive = True
                    continue
                return endpoint, entry.process
        if inactive:
            raise EndpointNotActive(f"the {AS4_TRANSPORT} endpoint for {document_type} is expired or not yet active")
        raise DocumentTypeNotSupported(f"no {AS4_TRANSPORT} endpoint for {document_type}")
