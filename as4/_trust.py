"""The trust decision on a peer's AP certificate: issued by a trusted AP CA, in its validity
window, shaped like an AP certificate. Revocation (OCSP/CRL) needs the network and lives in the
gateway; this is the offline part, shared by the receiver, the receipt check and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from as4._errors import FailedAuthentication

__all__ = ["check_ap_certificate", "load_certificates"]


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """All certificates in a PEM bundle."""
    return x509.load_pem_x509_certificates(pem)


def _valid_at(cert: x509.Certificate, at: datetime, what: str) -> None:
    if at < cert.not_valid_before_utc:
        raise FailedAuthentication(f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    if at > cert.not_valid_after_utc:
        raise FailedAuthentication(f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d}")


def check_ap_certificate(
    cert: x509.Certificate,
    trusted_cas: Sequence[x509.Certificate],
    at: datetime | None = None,
) -> x509.Certificate:
    """Accept ``cert`` only if one of ``trusted_cas`` issued it directly (as Peppol's AP CAs
    do), both are valid at ``at``, and it is an end-entity signing certificate. Returns the
    issuing CA; raises :class:`FailedAuthentication` naming the failed rule."""
    at = at or datetime.now(UTC)
    issuer = None
    for ca in trusted_cas:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):
            continue
        issuer = ca
        break
    if issuer is None:
        raise FailedAuthentication(f"certificate {cert.subject.rfc4514_string()!r} is not issued by a trusted AP CA")
    _valid_at(cert, at, "the certificate")
    _valid_at(issuer, at, "the issuing CA")
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if basic.ca:
            raise FailedAuthentication("a CA certificate cannot sign AS4 messages")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise FailedAuthentication("the certificate's key usage does not allow signatures")
    except x509.ExtensionNotFound:
        pass
    return issuer
