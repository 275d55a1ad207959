"""SML lookup: participant -> SMP URL through a U-NAPTR (``Meta:SMP``) DNS record.

The legacy CNAME form is not used (forbidden in Peppol since 2025-11-01).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from smp._errors import DiscoveryError
from smp._identifiers import ParticipantId

__all__ = [
    "SML_MANAGEMENT_URLS",
    "SML_ZONES",
    "DnsFailure",
    "InsecureEndpoint",
    "MalformedRecord",
    "NotRegistered",
    "SmlError",
    "SmlLookup",
    "check_endpoint_url",
    "dns_name",
    "is_peppol_zone",
    "management_url",
    "resolve_zone",
]

SML_ZONES = {
    "production": "participant.sml.prod.tech.peppol.org",
    "test": "participant.sml.test.tech.peppol.org",
    # Deprecated European Commission zones, reachable only by naming them.
    "ec-production": "edelivery.tech.ec.europa.eu",
    "ec-test": "acc.edelivery.tech.ec.europa.eu",
}
_PEPPOL_ZONES = set(SML_ZONES.values())
# The management interface of each Peppol SML, by its DNS zone.
SML_MANAGEMENT_URLS = {
    SML_ZONES["production"]: "https://api.sml.prod.tech.peppol.org/edelivery-sml",
    SML_ZONES["test"]: "https://api.sml.test.tech.peppol.org/edelivery-sml",
    SML_ZONES["ec-production"]: "https://edelivery.tech.ec.europa.eu/edelivery-sml",
    SML_ZONES["ec-test"]: "https://acc.edelivery.tech.ec.europa.eu/edelivery-sml",
}


class SmlError(DiscoveryError):
    """The SML lookup failed; ``retryable`` tells whether trying later may help."""

    retryable = False


class NotRegistered(SmlError):
    """The participant is not registered in the SML (NXDOMAIN or no Meta:SMP record)."""


class DnsFailure(SmlError):
    """DNS did not answer (timeout, SERVFAIL, network error): try again later."""

    retryable = True


class MalformedRecord(SmlError):
    """A Meta:SMP record exists but does not yield a usable SMP URL."""


class InsecureEndpoint(DiscoveryError):
    """The SMP names an AS4 endpoint address that Peppol does not allow (not https)."""


def resolve_zone(zone: str) -> str:
    """``production``/``test`` (and the legacy ``ec-*`` names) or a DNS zone as given."""
    return SML_ZONES.get(zone, zone).rstrip(".")


def is_peppol_zone(zone: str) -> bool:
    """Whether ``zone`` is one of the Peppol SMLs (not a local zone of our own)."""
    return resolve_zone(zone) in _PEPPOL_ZONES


def management_url(zone: str) -> str | None:
    """The management interface's base URL of a Peppol SML zone; None for any other zone."""
    return SML_MANAGEMENT_URLS.get(resolve_zone(zone))


def dns_name(participant: ParticipantId, zone: str) -> str:
    """``base32(sha256(lower(value)))`` without padding, then the scheme and the zone."""
    digest = hashlib.sha256(participant.key.encode("utf-8")).digest()
    label = base64.b32encode(digest).decode("ascii").rstrip("=")
    return f"{label}.{participant.scheme}.{resolve_zone(zone)}"


@dataclass(frozen=True)
class SmpLocation:
    """Where a participant's SMP is, and how it was found."""

    dns_name: str
    url: str  # base URL, no trailing slash


def _apply_regexp(regexp: str, subject: str) -> str:
    """Apply a NAPTR substitution ``!ERE!replacement!flags`` (RFC 3403) to ``subject``."""
    if len(regexp) < 3:
        raise MalformedRecord(f"NAPTR regexp {regexp!r} is too short")
    delim = regexp[0]
    parts = regexp[1:].split(delim)
    if len(parts) != 3:
        raise MalformedRecord(f"NAPTR regexp {regexp!r} is not delim-ERE-delim-replacement-delim")
    ere, replacement, flags = parts
    try:
        pattern = re.compile(ere, re.IGNORECASE if "i" in flags else 0)
    except re.error as exc:
        raise MalformedRecord(f"NAPTR regexp {ere!r} does not compile: {exc}") from None
    match = pattern.search(subject)
    if not match:
        raise MalformedRecord(f"NAPTR regexp {ere!r} does not match {subject!r}")
    return re.sub(r"\\(\d)", lambda m: match.group(int(m.group(1))) or "", replacement)


def check_smp_url(url: str, zone: str) -> str:
    """SML 1.3.0 rules for the URL; ``http`` is allowed only outside the Peppol zones."""
    parts = urlsplit(url)
    peppol = resolve_zone(zone) in _PEPPOL_ZONES
    allowed = ("https",) if peppol else ("https", "http")
    if parts.scheme.lower() not in allowed:
        raise MalformedRecord(f"SMP URL {url!r} must use {' or '.join(allowed)}")
    if not parts.hostname:
        raise MalformedRecord(f"SMP URL {url!r} has no host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise MalformedRecord(f"SMP URL {url!r} must not carry user info, query or fragment")
    return url.rstrip("/")


def check_endpoint_url(url: str, zone: str) -> str:
    """In the Peppol zones an AS4 endpoint address must be ``https://`` (Peppol AS4 profile:
    TLS on the transport); elsewhere (a local SML) ``http://`` is allowed too."""
    scheme = urlsplit(url).scheme.lower()
    if resolve_zone(zone) in _PEPPOL_ZONES and scheme != "https":
        raise InsecureEndpoint(
            f"AS4 endpoint address {url!r} from the SMP is not https://; the Peppol network "
            f"({resolve_zone(zone)}) requires TLS for AS4"
        )
    if scheme not in ("https", "http"):
        raise InsecureEndpoint(f"AS4 endpoint address {url!r} is not an http(s) URL")
    return url


class SmlLookup:
    """Resolve participants to SMP URLs with dnspython's async resolver.

    ``nameserver`` (``HOST:PORT``) sends queries to that server instead of the system resolver.
    """

    def __init__(self, zone: str, nameserver: str | None = None, timeout: float = 5.0) -> None:
        self.zone = resolve_zone(zone)
        if nameserver:
            host, _, port = nameserver.rpartition(":")
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [host]
            self._resolver.port = int(port)
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self.queries = 0  # how many DNS queries this instance sent (for tests and metrics)

    async def locate(self, participant: ParticipantId) -> SmpLocation:
        """The SMP base URL of ``participant``; raises a :class:`SmlError` subclass."""
        name = dns_name(participant, self.zone)
        self.queries += 1
        try:
            answer = await self._resolver.resolve(name, "NAPTR")
        except dns.resolver.NXDOMAIN:
            raise NotRegistered(f"{participant} is not registered in the SML ({name})") from None
        except dns.resolver.NoAnswer:
            raise NotRegistered(f"{participant} has no NAPTR record ({name})") from None
        except (dns.exception.Timeout, dns.resolver.NoNameservers, OSError) as exc:
            raise DnsFailure(f"DNS lookup of {name} failed: {type(exc).__name__}") from None
        except dns.exception.DNSException as exc:
            raise DnsFailure(f"DNS lookup of {name} failed: {exc}") from None
        candidates = sorted(
            (
                rr
                for rr in answer
                if rr.flags.decode("ascii", "replace").upper() == "U"
                and rr.service.decode("ascii", "replace").lower() == "meta:smp"
            ),
            key=lambda rr: (rr.order, rr.preference),
        )
        if not candidates:
            raise NotRegistered(f"{participant} has no U/Meta:SMP NAPTR record ({name})")
        regexp = candidates[0].regexp.decode("utf-8", "replace")
        url = _apply_regexp(regexp, name)
        return SmpLocation(dns_name=name, url=check_smp_url(url, self.zone))
