"""Which SML our participants are registered in, and the operator's SML work: our SMP's own
record, its certificate change, and moving participants between SMPs.

A local zone with ``sml.update_server`` gets :class:`smp.LocalSml` (RFC 2136 updates); a Peppol
zone (or any zone with ``sml.management_url``) gets :class:`smp.SmlManagementClient` over mutual
TLS with our SMP key. Both are an :class:`smp.SmlRegistrar`, so registration code does not care.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import date

import asyncpg
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import smp
from gateway.core.config import ConfigError, Settings
from gateway.directory import queries
from gateway.directory.errors import NotFound, SmlRefused, SmlUnavailable
from gateway.directory.registration import publish
from gateway.directory.states import ProfileStatus

__all__ = [
    "SmlNotConfigured",
    "SmlStatus",
    "build_registrar",
    "change_certificate",
    "management_client",
    "migrate_in",
    "migrate_out",
    "register_smp",
    "sml_status",
]

log = structlog.get_logger("gateway.directory.sml")


class SmlNotConfigured:
    """A Peppol zone without the settings to reach its SML: every registration fails with the
    reason, so profiles stay pending and say why instead of being skipped in silence."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def register(self, participant: smp.ParticipantId) -> None:
        raise smp.RegistrationError(f"cannot register {participant} in the SML: {self.reason}")

    async def unregister(self, participant: smp.ParticipantId) -> None:
        raise smp.RegistrationError(f"cannot remove {participant} from the SML: {self.reason}")


def _management_url(settings: Settings) -> str | None:
    return settings.sml_management_url or smp.management_url(settings.sml_zone)


def management_client(settings: Settings) -> smp.SmlManagementClient:
    """The SML management client the settings describe; :class:`SmlUnavailable` when they
    describe none, :class:`ConfigError` when a key, certificate or CA file is unusable."""
    url = _management_url(settings)
    if url is None:
        raise SmlUnavailable(f"sml.zone {settings.sml_zone!r} is a local zone: set sml.management_url to manage an SML")
    if not settings.smp_id:
        raise SmlUnavailable("smp.id is not set: the SMP id OpenPeppol assigned is needed to use the SML")
    try:
        context = smp.client_tls_context(settings.smp_cert, settings.smp_key, settings.sml_management_trust)
    except FileNotFoundError as exc:
        raise ConfigError("sml.management_trust", f"cannot read {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("smp.key", f"cannot use the SMP key and certificate for TLS: {exc}") from None
    return smp.SmlManagementClient(url, settings.smp_id, ssl_context=context)


def build_registrar(settings: Settings, smp_url: str) -> smp.SmlRegistrar | None:
    """The registrar for the configured zone; None only for a local zone with neither an
    update server nor a management URL (nothing to register in)."""
    zone = settings.sml_zone
    if settings.sml_update_server:
        if smp.is_peppol_zone(zone):
            raise ConfigError("sml.update_server", "only for a local zone; the Peppol SML is managed over SOAP")
        if not settings.sml_update_key:
            raise ConfigError("sml.update_key", "required with sml.update_server")
        name, _, secret = settings.sml_update_key.partition(":")
        return smp.LocalSml(zone, settings.sml_update_server, smp_url, key_name=name, key_secret=secret)
    if _management_url(settings) is None:
        log.info("sml_registration_off", zone=zone, reason="local zone without update_server or management_url")
        return None
    try:
        return management_client(settings)
    except SmlUnavailable as exc:
        log.warning("sml_not_configured", zone=zone, reason=str(exc))
        return SmlNotConfigured(str(exc))


# -- the operator's SML work -------------------------------------------------------------------


@dataclass(frozen=True)
class SmlStatus:
    """What the SML holds for our SMP id: its record (None: unknown there) and participants."""

    smp_id: str
    url: str
    record: smp.SmpRecord | None
    participants: list[smp.ParticipantId]


def _refused(what: str, exc: smp.DiscoveryError) -> SmlRefused:
    fault = exc.fault if isinstance(exc, smp.SmlFault) else str(exc)
    return SmlRefused(f"{what}: {exc}", fault)


async def sml_status(client: smp.SmlManagementClient) -> SmlStatus:
    try:
        record = await client.read_smp()
        participants = await client.list_participants() if record is not None else []
    except smp.DiscoveryError as exc:
        raise _refused("reading our SMP's SML record failed", exc) from None
    return SmlStatus(client.smp_id, client.base_url, record, participants)


async def register_smp(client: smp.SmlManagementClient, smp_url: str, zone: str, physical: str) -> str:
    """Create or update our SMP's record (the SML publishes ``smp_url`` for our participants);
    returns ``created``, ``updated`` or ``unchanged``."""
    try:
        logical = smp.logical_address(smp_url, zone)
        done = await client.save_smp(logical, physical)
    except smp.DiscoveryError as exc:
        raise _refused("registering our SMP in the SML failed", exc) from None
    log.info("sml_smp_saved", smp_id=client.smp_id, logical=logical, physical=physical, outcome=done)
    return done


def certificate_pem(data: bytes) -> str:
    """The certificate as PEM text (from PEM or DER); :class:`ValueError` if it is none."""
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValueError("not an X.509 certificate (PEM or DER)") from None
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


async def change_certificate(client: smp.SmlManagementClient, new_cert: bytes, migration: date) -> None:
    """Announce our SMP's next certificate; from ``migration`` on the SML accepts only it."""
    try:
        await client.prepare_change_certificate(certificate_pem(new_cert), migration)
    except smp.DiscoveryError as exc:
        raise _refused("announcing the new SMP certificate failed", exc) from None
    log.info("sml_certificate_change_announced", smp_id=client.smp_id, migration=migration.isoformat())


async def migrate_out(client: smp.SmlManagementClient, participant: smp.ParticipantId) -> str:
    """Let another SMP take the participant over: a fresh migration key, announced to the SML;
    hand it to the new SMP's operator."""
    key = smp.new_migration_key()
    try:
        await client.prepare_migration(participant, key)
    except smp.DiscoveryError as exc:
        raise _refused(f"preparing the migration of {participant} failed", exc) from None
    log.info("sml_migration_prepared", participant=str(participant))
    return key


async def migrate_in(
    pool: asyncpg.Pool, client: smp.SmlManagementClient, participant: smp.ParticipantId, key: str
) -> list[queries.Profile]:
    """Take over a participant its current SMP prepared for migration with ``key``. Its company
    and receiving profiles must be registered here first (they wait, pending, as the SML still
    points elsewhere); once the SML moved it, they are active."""
    owner = await queries.participant_company(pool, participant)
    if owner is None:
        raise NotFound(f"{participant} is not registered here: add its company and receiving profiles first")
    try:
        smp.check_migration_key(key)
        await client.migrate(participant, key)
    except smp.DiscoveryError as exc:
        raise _refused(f"migrating {participant} to our SMP failed", exc) from None
    log.info("sml_migrated_in", participant=str(participant))
    pending = await queries.company_profiles(pool, owner, ProfileStatus.PENDING)
    waiting = [p for p in pending if p.value.lower() == participant.key]
    return await publish(pool, None, owner, participant, waiting) if waiting else []
