"""Everything one gateway process shares, built once at start-up, and the one place that starts
and stops its background work.

``build_runtime`` loads keys, trust anchors and discovery into an immutable ``Runtime`` (commands
such as ``send`` and ``report`` need no more). ``start_services`` registers this access point's
SPID and starts every background task of a serving gateway (outbound delivery, the inbound
processor, webhooks, the certificate watcher, the reporting schedule, the archiver, SML
registrations tried again, the Peppol Directory's indexer told of business card changes) in one
``Lifecycle``; ``Services.stop`` ends them within the grace period.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
import structlog

import smp
from gateway.core.config import ConfigError, Settings
from gateway.core.lifecycle import Lifecycle, Wakeup
from gateway.core.metrics import Metrics
from gateway.directory import queries as directory_queries
from gateway.directory.indexer import DirectoryIndexer
from gateway.directory.registration import SmlRetry
from gateway.directory.sml import build_registrar
from gateway.duties.archive import Archiver
from gateway.duties.archive_store import ArchiveStore, open_archive
from gateway.duties.errors import ArchiveError
from gateway.duties.mls_watch import MlsWatch
from gateway.duties.provider import Provider, ensure_provider
from gateway.duties.reporting import ReportService
from gateway.duties.validation import (
    ValidationResult,
    Validator,
    validate_document,
    validate_report,
    validation_unavailable,
)
from gateway.inbound.processing import MLS_STATES, InboundProcessor
from gateway.inbound.states import ProcessingState
from gateway.outbound.circuits import EndpointGuard
from gateway.outbound.worker import OutboundWorker
from gateway.security.anchors import trust_in_force
from gateway.security.certificates import CertificateWatcher, WatchedIdentity
from gateway.security.identity import ApIdentity, load_identity
from gateway.security.trust import CertificateTrust
from gateway.webhooks.delivery import WebhookWorker

log = structlog.get_logger("gateway.runtime")

__all__ = ["Runtime", "Services", "build_runtime", "check_validation_available", "start_services"]

SML_RETRY_INTERVAL = 30.0  # seconds between looks for SML registrations due again
DIRECTORY_POLL_INTERVAL = 30.0  # seconds between looks for Directory notifications due again


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    identity: ApIdentity
    smp_identity: ApIdentity
    trust: CertificateTrust
    discovery: smp.SmpClient
    registrar: smp.SmlRegistrar | None
    public_url: str
    validator: Validator | None = None
    archive: ArchiveStore | None = None
    metrics: Metrics = field(default_factory=Metrics)
    # The inbound processor's wake-up, set by the AS4 endpoint when a stored message has work left.
    inbound_wake: Wakeup = field(default_factory=Wakeup)
    # The Directory notifier's wake-up, set when a business card change queued a notification.
    directory_wake: Wakeup = field(default_factory=Wakeup)

    async def validate(self, data: bytes) -> ValidationResult:
        """Validate in the process pool (or, without one, in a thread)."""
        if self.validator is not None:
            return await self.validator.validate(data)
        return await asyncio.to_thread(validate_document, data)

    async def validate_report(self, data: bytes) -> ValidationResult:
        """Check a TSR/EUSR against the reporting rules, in the pool when there is one."""
        if self.validator is not None:
            return await self.validator.validate_report(data)
        return await asyncio.to_thread(validate_report, data)

    @property
    def as4_url(self) -> str:
        return f"{self.public_url}/as4"

    @property
    def smp_url(self) -> str:
        return (self.settings.smp_url or f"{self.public_url}/smp").rstrip("/")

    def outbound_worker(self) -> OutboundWorker:
        """The outbound worker as the settings describe it (retries, lease, per-endpoint limits)."""
        settings = self.settings
        return OutboundWorker(
            self.pool, self.identity, self.trust, self.discovery,
            retry_initial=settings.retry_initial, retry_max=settings.retry_max,
            poll_interval=settings.poll_interval, metrics=self.metrics, lease_seconds=settings.lease_seconds,
            guard=EndpointGuard(
                self.pool, threshold=settings.circuit_threshold, cooldown=settings.circuit_cooldown,
                max_concurrent=settings.per_endpoint,
            ),
        )  # fmt: skip

    def report_service(self, provider: Provider) -> ReportService:
        """The reporting service as the settings describe it, checking reports in the pool."""
        settings = self.settings
        return ReportService(
            self.pool, provider, receiver=settings.reporting_receiver, retry_window=settings.retry_window,
            send=settings.reporting_send, check_interval=settings.reporting_check_interval,
            validate=self.validate_report,
        )  # fmt: skip

    async def close(self) -> None:
        if self.archive is not None:
            await self.archive.close()
        await self.discovery.close()
        await self.trust.close()
        if self.validator is not None:
            self.validator.close()


async def check_validation_available(settings: Settings, pool: asyncpg.Pool) -> None:
    """Refuse to serve when the rule layers cannot run but something needs them: submissions
    checked on arrival (``validation.on_submit``) or a company refusing invalid documents it
    receives (``inbound_validation = reject``). A one-line :class:`ConfigError` says which."""
    reason = validation_unavailable()
    if reason is None:
        return
    needs = []
    if settings.validate_on_submit:
        needs.append("validation.on_submit = true")
    inbound = await directory_queries.companies_with_policy(pool, "inbound_validation", "reject")
    if inbound:
        needs.append(f"{inbound} companies with inbound_validation = reject")
    if needs:
        raise ConfigError("validation", f"the rule layers cannot run ({reason}), but {' and '.join(needs)} need them")
    log.warning("validation_unavailable", why=reason)


def build_runtime(settings: Settings, pool: asyncpg.Pool, port: int | None = None) -> Runtime:
    """Load keys and trust anchors and set up discovery; bad files stop start-up (ConfigError)."""
    identity = load_identity(settings.ap_key, settings.ap_cert, "ap")
    smp_identity = load_identity(settings.smp_key, settings.smp_cert, "smp")
    trust = CertificateTrust(trust_in_force(settings, "ap").certificates, policy=settings.revocation)
    discovery = smp.SmpClient(
        smp.SmlLookup(settings.sml_zone, settings.sml_dns),
        smp_trust=trust_in_force(settings, "smp").certificates,
    )
    public_url = (settings.public_url or f"http://{settings.listen_host}:{port or settings.listen_port}").rstrip("/")
    registrar = build_registrar(settings, settings.smp_url or f"{public_url}/smp")
    validator = Validator(settings.validation_processes) if settings.validate_on_submit else None
    archive = None
    if settings.archive_target:
        try:
            archive = open_archive(
                settings.archive_target, s3_endpoint=settings.archive_s3_endpoint,
                access_key=settings.archive_s3_access_key, secret_key=settings.archive_s3_secret_key,
                region=settings.archive_s3_region,
            )  # fmt: skip
        except ArchiveError as exc:
            raise ConfigError("archive.target", str(exc)) from None
    return Runtime(settings, pool, identity, smp_identity, trust, discovery, registrar, public_url, validator, archive)


@dataclass(frozen=True)
class Services:
    """The background work of a serving gateway, started together and stopped together."""

    provider: Provider
    outbound: OutboundWorker
    processor: InboundProcessor
    reports: ReportService
    webhooks: WebhookWorker
    lifecycle: Lifecycle
    sml: SmlRetry | None = None
    directory: DirectoryIndexer | None = None

    async def stop(self) -> int:
        """Stop every task (see ``Lifecycle.stop``); returns how many had to be cancelled."""
        cancelled = await self.lifecycle.stop()
        await self.webhooks.close()
        return cancelled


async def start_services(runtime: Runtime) -> Services:
    """Register this access point's SPID, then start each background task the settings ask for:
    ``workers.outbound`` delivery loops, ``workers.inbound`` processors, ``workers.webhook``
    webhook loops, the certificate watcher, the reporting schedule and the archiver."""
    settings = runtime.settings
    provider = await ensure_provider(runtime.pool, runtime.identity, runtime.registrar)
    lifecycle = Lifecycle(grace=settings.shutdown_timeout)
    stop = lifecycle.stop_event
    outbound = runtime.outbound_worker()
    processor = InboundProcessor(
        runtime.pool, provider, runtime.validate, retry_window=settings.retry_window,
        poll_interval=settings.poll_interval, lease_seconds=settings.lease_seconds, wake=runtime.inbound_wake,
    )  # fmt: skip
    reports = runtime.report_service(provider)
    webhooks = WebhookWorker(
        runtime.pool, poll_interval=settings.poll_interval, retry_every=settings.webhook_retry_interval,
        give_up_after=settings.webhook_give_up_after, timeout=settings.webhook_timeout,
    )  # fmt: skip
    if settings.outbound_workers > 0:
        lifecycle.start("outbound.delivery", outbound.run(stop, settings.outbound_workers))
    for _ in range(settings.inbound_workers):
        lifecycle.start("inbound.processing", processor.run(stop))
    for _ in range(settings.webhook_workers):
        lifecycle.start("webhooks.delivery", webhooks.run(stop))
    watcher = CertificateWatcher(
        [
            WatchedIdentity("ap", runtime.identity, settings.ap_key, settings.ap_cert),
            WatchedIdentity("smp", runtime.smp_identity, settings.smp_key, settings.smp_cert),
        ],
        runtime.pool,
        interval=settings.reload_interval,
    )
    lifecycle.start("security.certificates", watcher.run(stop))
    if settings.reporting_schedule:
        lifecycle.start("duties.reporting", reports.run(stop))
    if runtime.archive is not None:
        archiver = Archiver(
            runtime.pool, runtime.archive, after_days=settings.archive_after_days,
            retention_days=settings.archive_retention_days, inbound_done=ProcessingState.DONE,
        )  # fmt: skip
        lifecycle.start("duties.archive", archiver.run(stop, settings.archive_interval))
    mls = MlsWatch(
        runtime.pool, MLS_STATES, send_held_due=processor.send_held_due, warn_margin=settings.mls_warn_margin
    )
    lifecycle.loop("duties.mls_deadlines", mls.step, interval=settings.mls_check_interval)
    sml = None
    if runtime.registrar is not None:
        sml = SmlRetry(runtime.pool, runtime.registrar)
        lifecycle.loop("directory.sml", sml.step, interval=SML_RETRY_INTERVAL)
    directory = directory_indexer(settings, runtime.pool)
    if directory is not None:
        lifecycle.loop(
            "directory.indexer", directory.step, interval=DIRECTORY_POLL_INTERVAL, wake=runtime.directory_wake
        )
    log.info("background_started", tasks=lifecycle.names)
    return Services(provider, outbound, processor, reports, webhooks, lifecycle, sml, directory)


def directory_indexer(settings: Settings, pool: asyncpg.Pool) -> DirectoryIndexer | None:
    """The Peppol Directory notifier as ``[directory]`` describes it (None: no indexer set)."""
    if not settings.directory_indexer_url:
        return None
    return DirectoryIndexer(
        pool, settings.directory_indexer_url, client_certificate=(settings.smp_cert, settings.smp_key),
        trust=settings.directory_indexer_trust, retry_interval=settings.directory_retry_interval,
        give_up_after=settings.directory_give_up_after,
    )  # fmt: skip
