"""Whether to trust a peer access point's certificate: issued by a trusted AP CA, within its
validity, and not revoked (OCSP first, then the CRL; answers cached; a configurable policy for
when neither answers)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

import as4
from gateway.security.errors import SecurityError

__all__ = ["CertificateTrust", "RevocationUnknown", "Revoked"]

log = structlog.get_logger("gateway.security.trust")


class Revoked(as4.FailedAuthentication, SecurityError):
    """The certificate has been revoked by its CA."""


class RevocationUnknown(as4.FailedAuthentication, SecurityError):
    """Neither OCSP nor the CRL answered, and the policy is hard-fail."""


@dataclass(frozen=True)
class _Status:
    state: str  # "good", "revoked" or "unknown"
    source: str
    expires: float


def _verify_signed_by(
    public_key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and algorithm is not None:
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm is not None:
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


class CertificateTrust:
    """Trust decisions for AP certificates, shared by every request of a gateway process."""

    def __init__(
        self,
        trusted_cas: Sequence[x509.Certificate],
        *,
        policy: str = "soft-fail",
        cache_seconds: float = 3600.0,
        timeout: float = 5.0,
    ) -> None:
        self.trusted_cas = list(trusted_cas)
        self.policy = policy
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._status: dict[tuple[bytes, int], _Status] = {}
        self._crls: dict[str, tuple[float, x509.CertificateRevocationList]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._not_checkable: set[bytes] = set()  # fingerprints already logged as such
        # certificates that passed the offline checks: fingerprint -> (issuer, CAs checked
        # against, the window in which both certificates are valid)
        self._chains: dict[bytes, tuple[x509.Certificate, tuple[x509.Certificate, ...], datetime, datetime]] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def check(self, cert: x509.Certificate, at: datetime | None = None) -> None:
        """Raise :class:`as4.FailedAuthentication` (or a subclass) unless ``cert`` is trusted."""
        issuer = self._issuer(cert, at)
        if self.policy == "off":
            return
        status = await self._revocation(cert, issuer)
        if status.state == "revoked":
            raise Revoked(f"certificate {cert.subject.rfc4514_string()!r} is revoked ({status.source})")
        if status.state == "unknown":
            if self.policy == "hard-fail":
                raise RevocationUnknown(
                    f"revocation status of {cert.subject.rfc4514_string()!r} unknown: {status.source}"
                )
            if status.source.startswith("no OCSP responder named; no CRL"):
                # nothing to ask (a development certificate): say so quietly, once per certificate
                fingerprint = cert.fingerprint(hashes.SHA256())
                if fingerprint not in self._not_checkable:
                    self._not_checkable.add(fingerprint)
                    log.info(
                        "revocation_not_checkable",
                        subject=cert.subject.rfc4514_string(),
                        fingerprint=fingerprint.hex(),
                    )
            else:
                log.warning("revocation_unknown_accepted", subject=cert.subject.rfc4514_string(), why=status.source)

    def _issuer(self, cert: x509.Certificate, at: datetime | None) -> x509.Certificate:
        """The trusted CA that issued ``cert`` (:func:`as4.check_ap_certificate`'s offline checks),
        remembered per certificate: what they decide depends on the certificate, the trusted CAs
        and the time only, so a certificate seen before costs its fingerprint and a comparison
        of the time with the validity of both certificates, not a signature check."""
        when = at or datetime.now(UTC)
        key = cert.fingerprint(hashes.SHA256())
        known = self._chains.get(key)
        cas = tuple(self.trusted_cas)
        if known is not None and known[1] == cas and known[2] <= when <= known[3]:
            return known[0]
        issuer = as4.check_ap_certificate(cert, cas, when)
        if len(self._chains) >= 10_000:  # bounded: peers are a few hundred access points
            self._chains.clear()
        window = (
            max(cert.not_valid_before_utc, issuer.not_valid_before_utc),
            min(cert.not_valid_after_utc, issuer.not_valid_after_utc),
        )
        self._chains[key] = (issuer, cas, *window)
        return issuer

    async def _revocation(self, cert: x509.Certificate, issuer: x509.Certificate) -> _Status:
        key = (issuer.fingerprint(hashes.SHA256()), cert.serial_number)
        cached = self._status.get(key)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached
        status = await self._ocsp(cert, issuer)
        if status.state == "unknown":
            crl_status = await self._crl(cert, issuer)
            if crl_status.state != "unknown":
                status = crl_status
            else:
                status = _Status("unknown", f"{status.source}; {crl_status.source}", now + 60)
        self._status[key] = status
        return status

    async def _ocsp(self, cert: x509.Certificate, issuer: x509.Certificate) -> _Status:
        now = time.monotonic()
        try:
            aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
            urls = [
                d.access_location.value
                for d in aia
                if d.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(d.access_location, x509.UniformResourceIdentifier)
            ]
        except x509.ExtensionNotFound:
            urls = []
        if not urls:
            return _Status("unknown", "no OCSP responder named", now + 60)
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303 - the OCSP CertID hash
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        for url in urls:
            try:
                async with self._http().post(
                    url, data=request, headers={"Content-Type": "application/ocsp-request"}
                ) as response:
                    body = await response.content.read(256 * 1024)
                    if response.status != 200:
                        continue
                answer = ocsp.load_der_ocsp_response(body)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                log.info("ocsp_unavailable", url=url, error=type(exc).__name__)
                continue
            if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                continue
            if not self._ocsp_signature_ok(answer, issuer):
                log.warning("ocsp_bad_signature", url=url)
                continue
            if answer.serial_number != cert.serial_number:
                continue
            ttl = self.cache_seconds
            if answer.next_update_utc is not None:
                ttl = min(ttl, max(0.0, (answer.next_update_utc - datetime.now(UTC)).total_seconds()))
            if answer.certificate_status == ocsp.OCSPCertStatus.GOOD:
                return _Status("good", f"OCSP {url}", now + ttl)
            if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
                return _Status("revoked", f"OCSP {url}", now + self.cache_seconds)
        return _Status("unknown", "OCSP did not answer", now + 60)

    @staticmethod
    def _ocsp_signature_ok(answer: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool:
        signer = issuer
        for candidate in answer.certificates:
            try:
                candidate.verify_directly_issued_by(issuer)
                eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
                continue
            if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
                signer = candidate
                break
        return _verify_signed_by(
            signer.public_key(),
            answer.signature,
            answer.tbs_response_bytes,
            answer.signature_hash_algorithm,
        )

    async def _crl(self, cert: x509.Certificate, issuer: x509.Certificate) -> _Status:
        now = time.monotonic()
        try:
            points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
            urls = [
                name.value
                for point in points
                for name in (point.full_name or [])
                if isinstance(name, x509.UniformResourceIdentifier)
            ]
        except x509.ExtensionNotFound:
            urls = []
        if not urls:
            return _Status("unknown", "no CRL distribution point", now + 60)
        for url in urls:
            crl = await self._fetch_crl(url, issuer)
            if crl is None:
                continue
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                return _Status("revoked", f"CRL {url}", now + self.cache_seconds)
            return _Status("good", f"CRL {url}", now + self.cache_seconds)
        return _Status("unknown", "CRL not available", now + 60)

    async def _fetch_crl(self, url: str, issuer: x509.Certificate) -> x509.CertificateRevocationList | None:
        now = time.monotonic()
        cached = self._crls.get(url)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            async with self._http().get(url) as response:
                body = await response.content.read(32 * 1024 * 1024)
                if response.status != 200:
                    return None
            crl = x509.load_pem_x509_crl(body) if body.lstrip().startswith(b"-----") else x509.load_der_x509_crl(body)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            log.info("crl_unavailable", url=url, error=type(exc).__name__)
            return None
        if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            log.warning("crl_bad_signature", url=url)
            return None
        ttl = self.cache_seconds
        if crl.next_update_utc is not None:
            ttl = min(ttl, max(0.0, (crl.next_update_utc - datetime.now(UTC)).total_seconds()))
        self._crls[url] = (now + ttl, crl)
        return crl
