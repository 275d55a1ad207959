"""Which CA certificates this gateway trusts, and whether its own certificates fit them.

The Peppol G3 CAs of both networks ship with the package (``gateway/security/pki``). With
``sml.zone`` ``production`` or ``test`` they are the default of ``ap.trust`` and ``smp.trust``;
for any other zone (the local sandbox) the development PKI's CAs in ``certs-dev/`` are. A trust
set explicitly is used as chosen. At start-up :func:`check_own_certificate` makes sure our AP
and SMP certificates chain to the trust in force and are valid now: with the shipped defaults
that also pins the network (a test certificate cannot serve the production zone, the
development PKI cannot serve a Peppol zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography import x509

import as4
import smp
from gateway.core.config import ConfigError, Settings
from gateway.security.identity import load_cert, load_trust

__all__ = [
    "SHIPPED_DIR",
    "TrustInForce",
    "check_own_certificate",
    "check_own_certificates",
    "log_trust",
    "peppol_network",
    "shipped_trust_file",
    "trust_in_force",
]

log = structlog.get_logger("gateway.security.anchors")

SHIPPED_DIR = Path(__file__).resolve().parent / "pki"
ROLES = ("ap", "smp")
_DEVELOPMENT = {"ap": Path("certs-dev/ap-ca.cert.pem"), "smp": Path("certs-dev/smp-ca.cert.pem")}
_ROLE_NAMES = {"ap": "AP", "smp": "SMP"}


def peppol_network(zone: str) -> str | None:
    """``production`` or ``test`` when ``zone`` is that Peppol SML zone (by name or DNS name)."""
    resolved = smp.resolve_zone(zone)
    for network in ("production", "test"):
        if resolved == smp.SML_ZONES[network]:
            return network
    return None


def shipped_trust_file(role: str, network: str) -> Path:
    """The shipped PEM bundle of one role's Peppol G3 CA (and its root) in one network."""
    return SHIPPED_DIR / f"peppol-g3-{role}-{network}.pem"


@dataclass(frozen=True)
class TrustInForce:
    """The CA certificates one role trusts, and where they came from."""

    role: str  # "ap" or "smp"
    setting: str  # "ap.trust" or "smp.trust"
    source: str  # "shipped" (Peppol G3 CAs), "configured" (set explicitly) or "development"
    network: str | None  # the Peppol network of the SML zone, None outside Peppol
    paths: tuple[Path, ...]
    certificates: tuple[x509.Certificate, ...]

    @property
    def subjects(self) -> list[str]:
        return [cert.subject.rfc4514_string() for cert in self.certificates]

    def describe(self) -> str:
        if self.source == "shipped":
            return f"the shipped Peppol {self.network} G3 {_ROLE_NAMES[self.role]} CA"
        if self.source == "development":
            return f"the development PKI's {_ROLE_NAMES[self.role]} CA ({', '.join(map(str, self.paths))})"
        return f"{self.setting} ({', '.join(map(str, self.paths))})"


def trust_in_force(settings: Settings, role: str, zone: str | None = None) -> TrustInForce:
    """Load the trust of ``role`` (``ap`` or ``smp``) for ``zone`` (default: ``sml.zone``);
    an unreadable file stops with a :class:`ConfigError` naming the setting."""
    setting = f"{role}.trust"
    network = peppol_network(zone or settings.sml_zone)
    configured: tuple[Path, ...] = getattr(settings, f"{role}_trust")
    if configured:
        paths, source = configured, "configured"
    elif network is not None:
        paths, source = (shipped_trust_file(role, network),), "shipped"
    else:
        paths, source = (_DEVELOPMENT[role],), "development"
    certificates = tuple(load_trust(paths, setting))
    if not certificates:
        raise ConfigError(setting, f"{', '.join(map(str, paths))} holds no certificates")
    return TrustInForce(role, setting, source, network, paths, certificates)


def log_trust(trust: TrustInForce) -> None:
    """Say which trust is in force: the first thing to check when peers are refused."""
    log.info(
        "trust_in_force", role=trust.role, source=trust.source, network=trust.network,
        files=[str(p) for p in trust.paths], subjects=trust.subjects,
    )  # fmt: skip


def _mismatch_hint(cert: x509.Certificate, trust: TrustInForce) -> str:
    """Why a certificate that does not chain probably does not: the wrong network or PKI."""
    if trust.source != "shipped":
        return ""
    issuer = cert.issuer.rfc4514_string().upper()
    peppol = "PEPPOL" in issuer and "G3" in issuer
    if trust.network == "production" and peppol and "TEST" in issuer:
        return "; a Peppol test certificate cannot be used with sml.zone = production"
    if trust.network == "test" and peppol and "TEST" not in issuer:
        return "; a Peppol production certificate cannot be used with sml.zone = test"
    if not peppol:
        return f"; sml.zone is the Peppol {trust.network} network, which needs a Peppol G3 certificate"
    return ""


def check_own_certificate(
    cert: x509.Certificate, trust: TrustInForce, setting: str, at: datetime | None = None
) -> None:
    """Our certificate must be issued by a CA of the trust in force, and it and that CA valid
    now; otherwise peers refuse everything we sign. Raises one-line :class:`ConfigError`."""
    at = at or datetime.now(UTC)
    try:
        if trust.role == "smp":
            smp.check_smp_certificate(cert, trust.certificates, at)
        else:
            as4.check_ap_certificate(cert, trust.certificates, at)
    except (as4.FailedAuthentication, smp.UntrustedSmpCertificate) as exc:
        reason = exc.reason if isinstance(exc, as4.FailedAuthentication) else str(exc)
        raise ConfigError(
            setting,
            f"{cert.subject.rfc4514_string()} (issued by {cert.issuer.rfc4514_string()}) does not fit "
            f"{trust.describe()}: {reason}{_mismatch_hint(cert, trust)}",
        ) from None


def check_own_certificates(settings: Settings) -> list[TrustInForce]:
    """The start-up check of ``serve``: our AP certificate against the AP trust, our SMP
    certificate against the SMP trust; logs each trust in force and returns them."""
    trusts = []
    for role in ROLES:
        trust = trust_in_force(settings, role)
        cert = load_cert(getattr(settings, f"{role}_cert"), f"{role}.cert")
        check_own_certificate(cert, trust, f"{role}.cert")
        log_trust(trust)
        trusts.append(trust)
    return trusts
