"""Can this participant receive that document? The receiver check behind
``GET /v1/participants/{participant}`` and the ``lookup`` command.

Everything comes through the cached, single-flight SMP client: the SML record, the ServiceGroup,
each document type's signed metadata (signature and SMP certificate verified) and the business
card. Each AS4 endpoint's certificate is then checked against our AP trust. The answer is a
:class:`ParticipantReport`; deciding what it means (``receives``) is a plain function of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

import as4
import smp

__all__ = [
    "MAX_DOCUMENT_TYPES",
    "CertificateCheck",
    "EndpointReport",
    "Failure",
    "ParticipantReport",
    "ProcessReport",
    "ServiceReport",
    "card_json",
    "certificate_facts",
    "discover_participant",
    "failure",
    "failure_reason",
    "report_json",
    "wanted_document_types",
]

MAX_DOCUMENT_TYPES = 100  # document types of one participant looked at in one check
_CONCURRENT_FETCHES = 8

# (failure class, stable code, what it is called in one line)
_FAILURES: tuple[tuple[type[Exception], str, str], ...] = (
    (smp.NotRegistered, "not_registered", "not registered in the SML"),
    (smp.DnsFailure, "dns_failure", "DNS failure"),
    (smp.MalformedRecord, "malformed_sml_record", "malformed SML record"),
    (smp.InsecureEndpoint, "endpoint_refused", "endpoint address refused"),
    (smp.ParticipantUnknown, "participant_unknown", "participant unknown to its SMP"),
    (smp.DocumentTypeNotSupported, "document_type_not_supported", "document type not supported"),
    (smp.EndpointNotActive, "endpoint_not_active", "endpoint expired or not yet active"),
    (smp.SignatureInvalid, "smp_signature_invalid", "SMP signature invalid"),
    (smp.UntrustedSmpCertificate, "untrusted_smp_certificate", "untrusted SMP certificate"),
    (smp.SmpUnavailable, "smp_unavailable", "SMP unreachable"),
    (smp.MetadataError, "invalid_smp_answer", "invalid SMP answer"),
)
_SIGNATURE_FAILURES = (smp.SignatureInvalid, smp.UntrustedSmpCertificate)

CertificateCheck = Callable[[x509.Certificate], Awaitable[None]]


@dataclass(frozen=True)
class Failure:
    """A failed step: a stable code and a message for people."""

    code: str
    message: str


def _classify(exc: Exception) -> tuple[str, str]:
    for cls in type(exc).__mro__:
        for known, code, name in _FAILURES:
            if cls is known:
                return code, name
    return "discovery_failed", "discovery failed"


def failure(exc: Exception) -> Failure:
    code, _ = _classify(exc)
    return Failure(code, str(exc))


def failure_reason(exc: Exception) -> str:
    """One line naming what failed: ``untrusted SMP certificate: ...``."""
    code, name = _classify(exc)
    return str(exc) if code == "discovery_failed" else f"{name}: {exc}"


def certificate_facts(cert: x509.Certificate) -> dict[str, Any]:
    """What an ERP or an operator wants to know of an endpoint certificate."""
    return {
        "certificate_subject": cert.subject.rfc4514_string(),
        "seat_id": as4.seat_id(cert),
        "certificate_valid_from": cert.not_valid_before_utc.isoformat(),
        "certificate_valid_until": cert.not_valid_after_utc.isoformat(),
    }


@dataclass(frozen=True)
class EndpointReport:
    endpoint: smp.Endpoint
    active: bool
    trusted: bool
    problem: str | None = None

    @property
    def usable(self) -> bool:
        """An active AS4 endpoint whose certificate we trust: we could deliver there."""
        return self.endpoint.transport_profile == smp.AS4_TRANSPORT and self.active and self.trusted


@dataclass(frozen=True)
class ProcessReport:
    process: smp.ProcessId
    endpoints: tuple[EndpointReport, ...]


@dataclass(frozen=True)
class ServiceReport:
    """One document type the participant lists, as its SMP describes it."""

    document_type: smp.DocumentTypeId
    processes: tuple[ProcessReport, ...] = ()
    smp_certificate: x509.Certificate | None = None
    error: Failure | None = None
    signature_failed: bool = False

    def receivable(self, process: smp.ProcessId | None = None) -> bool:
        return self.error is None and any(
            e.usable for p in self.processes if process is None or p.process == process for e in p.endpoints
        )


@dataclass(frozen=True)
class ParticipantReport:
    participant: smp.ParticipantId
    registered: bool
    dns_name: str
    smp_url: str | None = None
    services: tuple[ServiceReport, ...] = ()
    wanted: tuple[smp.DocumentTypeId, ...] = ()  # the filter (empty: none)
    process: smp.ProcessId | None = None
    error: Failure | None = None  # a failure before any document type could be looked at
    business_card: smp.BusinessCard | None = None
    business_card_error: Failure | None = None
    truncated: bool = False

    def service_for(self, wanted: smp.DocumentTypeId) -> ServiceReport | None:
        listed = [s.document_type for s in self.services]
        match = smp.match_registration(wanted, listed)
        return None if match is None else next(s for s in self.services if s.document_type == match)

    @property
    def receives(self) -> bool:
        """With a filter: every wanted document type can be delivered to (an active AS4 endpoint,
        SMP signature and endpoint certificate trusted). Without one: at least one can."""
        if self.wanted:
            found = [self.service_for(w) for w in self.wanted]
            return all(s is not None and s.receivable(self.process) for s in found)
        return any(s.receivable(self.process) for s in self.services)


def wanted_document_types(
    document_type: str | None, profile: str | None, profile_version: str | None
) -> tuple[smp.DocumentTypeId, ...]:
    """The filter of a check: one document type, or those behind a receiving profile. Raises
    :class:`smp.IdentifierError` or ``KeyError`` (an unknown profile) for a bad one."""
    wanted: list[smp.DocumentTypeId] = []
    if document_type:
        wanted.append(smp.DocumentTypeId.parse(document_type))
    if profile:
        for entry in smp.profile_services(profile, profile_version or "PEPPOLBIS30"):
            if entry.document_type not in wanted:
                wanted.append(entry.document_type)
    return tuple(wanted)


async def _endpoint_report(endpoint: smp.Endpoint, check: CertificateCheck, now: datetime) -> EndpointReport:
    active = endpoint.active_at(now)
    try:
        await check(endpoint.certificate)
    except as4.FailedAuthentication as exc:
        return EndpointReport(endpoint, active, False, exc.reason)
    return EndpointReport(endpoint, active, True, None if active else "the endpoint is expired or not yet active")


async def _service_report(
    client: smp.SmpClient, participant: smp.ParticipantId, document_type: smp.DocumentTypeId, check: CertificateCheck
) -> ServiceReport:
    try:
        service = await client.service(participant, document_type)
    except smp.DiscoveryError as exc:
        return ServiceReport(document_type, error=failure(exc), signature_failed=isinstance(exc, _SIGNATURE_FAILURES))
    now = datetime.now(UTC)
    processes = []
    for entry in service.metadata.processes:
        endpoints = [await _endpoint_report(e, check, now) for e in entry.endpoints]
        processes.append(ProcessReport(entry.process, tuple(endpoints)))
    return ServiceReport(document_type, tuple(processes), service.smp_certificate)


async def discover_participant(
    client: smp.SmpClient,
    participant: smp.ParticipantId,
    check: CertificateCheck,
    *,
    wanted: Sequence[smp.DocumentTypeId] = (),
    process: smp.ProcessId | None = None,
    with_card: bool = True,
) -> ParticipantReport:
    """Everything the network says about ``participant`` (only ``wanted`` document types when a
    filter is given). A failure that may pass (DNS, an SMP down) is raised as the
    :class:`smp.DiscoveryError` it is; a final one is part of the report."""
    name = smp.dns_name(participant, client.sml.zone)
    try:
        group = await client.participant_services(participant)
    except (smp.NotRegistered, smp.MalformedRecord) as exc:
        if isinstance(exc, smp.NotRegistered):
            return ParticipantReport(participant, False, name, wanted=tuple(wanted), process=process)
        return ParticipantReport(participant, True, name, wanted=tuple(wanted), process=process, error=failure(exc))
    except smp.DiscoveryError as exc:
        if exc.retryable:
            raise
        try:
            smp_url: str | None = (await client.locate(participant)).url
        except smp.DiscoveryError:
            smp_url = None
        return ParticipantReport(
            participant, True, name, smp_url, wanted=tuple(wanted), process=process, error=failure(exc)
        )
    listed = group.document_types
    if wanted:
        chosen = [m for w in wanted if (m := smp.match_registration(w, listed)) is not None]
        looked_at = list(dict.fromkeys(chosen))
    else:
        looked_at = list(listed)
    truncated = len(looked_at) > MAX_DOCUMENT_TYPES
    gate = asyncio.Semaphore(_CONCURRENT_FETCHES)

    async def one(document_type: smp.DocumentTypeId) -> ServiceReport:
        async with gate:
            return await _service_report(client, participant, document_type, check)

    services = await asyncio.gather(*(one(d) for d in looked_at[:MAX_DOCUMENT_TYPES]))
    card: smp.BusinessCard | None = None
    card_error: Failure | None = None
    if with_card:
        try:
            card = await client.business_card(participant)
        except smp.DiscoveryError as exc:
            card_error = failure(exc)
    return ParticipantReport(
        participant, True, group.dns_name, group.smp_url, tuple(services), tuple(wanted), process,
        business_card=card, business_card_error=card_error, truncated=truncated,
    )  # fmt: skip


# -- the JSON view ---------------------------------------------------------------------------------


def _failure_json(value: Failure | None) -> dict[str, str] | None:
    return None if value is None else {"code": value.code, "message": value.message}


def _endpoint_json(report: EndpointReport) -> dict[str, Any]:
    e = report.endpoint
    return {
        "url": e.url,
        "transport_profile": e.transport_profile,
        **certificate_facts(e.certificate),
        "activation": e.activation.isoformat() if e.activation else None,
        "expiration": e.expiration.isoformat() if e.expiration else None,
        "active": report.active,
        "certificate_trusted": report.trusted,
        "usable": report.usable,
        "problem": report.problem,
        "technical_contact": e.technical_contact or None,
    }


def _check(values: list[bool]) -> bool | None:
    """All passed, one failed, or nothing to check (``None``)."""
    return None if not values else all(values)


def card_json(card: smp.BusinessCard) -> dict[str, Any]:
    """A business card in the API's words (also what ``/v1/directory/search`` answers)."""
    return {
        "participant": str(card.participant),
        "entities": [
            {
                "name": entity.names[0].name,
                "names": [{"name": n.name, "language": n.language} for n in entity.names],
                "country": entity.country,
                "geographical_information": entity.geographical_information,
                "identifiers": [{"scheme": i.scheme, "value": i.value} for i in entity.identifiers],
                "websites": list(entity.websites),
                "contacts": [
                    {"type": c.type, "name": c.name, "phone": c.phone, "email": c.email} for c in entity.contacts
                ],
                "additional_information": entity.additional_information,
                "registration_date": entity.registration_date.isoformat() if entity.registration_date else None,
            }
            for entity in card.entities
        ],
    }


def report_json(report: ParticipantReport) -> dict[str, Any]:
    """The answer of ``GET /v1/participants/{participant}``."""
    services = []
    for s in report.services:
        known = smp.find_document_type(s.document_type)
        services.append(
            {
                "document_type": str(s.document_type),
                "name": known.name if known else None,
                "receivable": s.receivable(report.process),
                "smp_certificate_subject": s.smp_certificate.subject.rfc4514_string() if s.smp_certificate else None,
                "error": _failure_json(s.error),
                "processes": [
                    {"process": str(p.process), "endpoints": [_endpoint_json(e) for e in p.endpoints]}
                    for p in s.processes
                ],
            }
        )
    fetched = [s for s in report.services if s.error is None or s.signature_failed]
    endpoints = [e for s in report.services for p in s.processes for e in p.endpoints]
    answer: dict[str, Any] = {
        "participant": str(report.participant),
        "registered": report.registered,
        "sml_name": report.dns_name,
        "smp_url": report.smp_url,
        "receives": report.receives,
        "checks": {
            "smp_signature": _check([not s.signature_failed for s in fetched]),
            "ap_certificate": _check([e.trusted for e in endpoints]),
        },
        "error": _failure_json(report.error),
        "services": services,
        "truncated": report.truncated,
        "business_card": card_json(report.business_card) if report.business_card else None,
        "business_card_error": _failure_json(report.business_card_error),
    }
    if report.wanted:
        answers = []
        for wanted in report.wanted:
            service = report.service_for(wanted)
            answers.append(
                {
                    "document_type": str(wanted),
                    "receives": service is not None and service.receivable(report.process),
                    "registration": str(service.document_type) if service else None,
                }
            )
        answer["filter"] = {
            "document_types": answers,
            "process": str(report.process) if report.process else None,
        }
    return answer
