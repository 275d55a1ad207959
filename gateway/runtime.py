"""Everything one gateway process shares between requests and workers, built once at start-up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

import smp
from gateway.core.config import ConfigError, Settings
from gateway.core.metrics import Metrics
from gateway.duties.archive_store import ArchiveError, ArchiveStore, open_archive
from gateway.duties.validation import ValidationResult, Validator, validate_document, validate_report
from gateway.outbound.circuits import EndpointGuard
from gateway.outbound.worker import OutboundWorker
from gateway.security.identity import ApIdentity, load_identity, load_trust
from gateway.security.trust import CertificateTrust

if TYPE_CHECKING:
    from gateway.duties.reporting import ReportService
    from gateway.inbound.processing import InboundProcessor, Provider

__all__ = ["Runtime", "build_runtime"]


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    identity: ApIdentity
    smp_identity: ApIdentity
    trust: CertificateTrust
    discovery: smp.SmpClient
    registrar: smp.LocalSml | None
    public_url: str
    validator: Validator | None = None
    provider: Provider | None = None  # set at start-up, once the SPID is registered
    reports: ReportService | None = None
    processor: InboundProcessor | None = None
    archive: ArchiveStore | None = None

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

    def outbound_worker(self, metrics: Metrics | None = None) -> OutboundWorker:
        """The outbound worker as the settings describe it (retries, lease, per-endpoint limits)."""
        settings = self.settings
        return OutboundWorker(
            self.pool, self.identity, self.trust, self.discovery,
            retry_initial=settings.retry_initial, retry_max=settings.retry_max,
            poll_interval=settings.poll_interval, metrics=metrics, lease_seconds=settings.lease_seconds,
            guard=EndpointGuard(
                threshold=settings.circuit_threshold, cooldown=settings.circuit_cooldown,
                max_concurrent=settings.per_endpoint,
            ),
        )  # fmt: skip

    async def close(self) -> None:
        if self.archive is not None:
            await self.archive.close()
        await self.discovery.close()
        await self.trust.close()
        if self.validator is not None:
            self.validator.close()


def build_runtime(settings: Settings, pool: asyncpg.Pool, port: int | None = None) -> Runtime:
    """Load keys and trust anchors and set up discovery; bad files stop start-up (ConfigError)."""
    identity = load_identity(settings.ap_key, settings.ap_cert, "ap")
    smp_identity = load_identity(settings.smp_key, settings.smp_cert, "smp")
    trust = CertificateTrust(load_trust(settings.ap_trust, "ap.trust"), policy=settings.revocation)
    discovery = smp.SmpClient(
        smp.SmlLookup(settings.sml_zone, settings.sml_dns),
        smp_trust=load_trust(settings.smp_trust, "smp.trust"),
    )
    public_url = (settings.public_url or f"http://{settings.listen_host}:{port or settings.listen_port}").rstrip("/")
    registrar = None
    if settings.sml_update_server:
        if not settings.sml_update_key:
            raise ConfigError("sml.update_key", "required with sml.update_server")
        name, _, secret = settings.sml_update_key.partition(":")
        registrar = smp.LocalSml(
            settings.sml_zone,
            settings.sml_update_server,
            (settings.smp_url or f"{public_url}/smp"),
            key_name=name,
            key_secret=secret,
        )
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
    runtime = Runtime(settings, pool, identity, smp_identity, trust, discovery, registrar, public_url, validator)
    runtime.archive = archive
    return runtime
