"""A development PKI shaped like Peppol's G3 hierarchy, for local networks and tests only.

Root CA -> AP CA -> access point certificates (CN = seat id, like ``POP000001``)
        -> SMP CA -> SMP certificate

Key usages follow real Peppol certificates: end entities have ``CA=false``, digitalSignature +
keyEncipherment + dataEncipherment, and extended key usage clientAuth; CAs have pathlen 0 below
the root. The keys are unencrypted and must never be used outside development.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ACCESS_POINTS",
    "DevPki",
    "Issued",
    "create_dev_pki",
    "issue",
    "load_dev_pki",
    "name",
]

_ORG = "Peppol Gateway Development"

# (file stem, seat id, organisation, country)
ACCESS_POINTS: tuple[tuple[str, str, str, str], ...] = (
    ("ap1", "POP000001", "Development Access Point One", "NO"),
    ("ap2", "POP000002", "Development Access Point Two", "SE"),
)
SMP_SEAT = "PNO000900"


@dataclass(frozen=True)
class Issued:
    """A key and the certificate issued for it."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate


def name(cn: str, org: str = _ORG, country: str = "NO", ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, country)]
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def issue(
    subject: x509.Name,
    issuer: Issued | None,
    *,
    ca: bool,
    path_length: int | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key_size: int = 2048,
    extensions: Sequence[x509.ExtensionType] = (),
) -> Issued:
    """Issue a certificate; ``issuer=None`` makes it self-signed. ``extensions`` are added
    non-critical (e.g. OCSP and CRL pointers)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    now = dt.datetime.now(dt.UTC)
    start = not_before or now - dt.timedelta(minutes=5)
    end = not_after or now + dt.timedelta(days=3650 if ca else 730)
    issuer_name = issuer.cert.subject if issuer else subject
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
    else:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=True, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=True)
    builder = builder.add_extension(usage, critical=True)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return Issued(key, builder.sign(signing_key, hashes.SHA256()))


@dataclass(frozen=True)
class DevPki:
    directory: Path
    root: Issued
    ap_ca: Issued
    smp_ca: Issued
    access_points: dict[str, Issued]
    smp: Issued


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(directory: Path, stem: str, issued: Issued, with_key: bool = True) -> None:
    (directory / f"{stem}.cert.pem").write_bytes(_cert_pem(issued.cert))
    if with_key:
        path = directory / f"{stem}.key.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_key_pem(issued.key))


def create_dev_pki(directory: Path) -> DevPki:
    """Create the whole hierarchy and write it as PEM files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    root = issue(name("Dev PEPPOL Root TEST CA", ou="FOR TEST ONLY"), None, ca=True, path_length=1)
    ap_ca = issue(name("Dev PEPPOL ACCESS POINT TEST CA", ou="FOR TEST ONLY"), root, ca=True, path_length=0)
    smp_ca = issue(
        name("Dev PEPPOL SERVICE METADATA PUBLISHER TEST CA", ou="FOR TEST ONLY"),
        root,
        ca=True,
        path_length=0,
    )
    aps = {
        stem: issue(name(seat, org, country, ou="PEPPOL TEST AP"), ap_ca, ca=False)
        for stem, seat, org, country in ACCESS_POINTS
    }
    smp = issue(name(SMP_SEAT, "Development SMP", "NO", ou="PEPPOL TEST SMP"), smp_ca, ca=False)
    _write(directory, "root-ca", root)
    _write(directory, "ap-ca", ap_ca)
    _write(directory, "smp-ca", smp_ca)
    for stem, issued in aps.items():
        _write(directory, stem, issued)
        (directory / f"{stem}.chain.pem").write_bytes(_cert_pem(issued.cert) + _cert_pem(ap_ca.cert))
    _write(directory, "smp", smp)
    return DevPki(directory, root, ap_ca, smp_ca, aps, smp)


def _load(directory: Path, stem: str) -> Issued:
    key = serialization.load_pem_private_key((directory / f"{stem}.key.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate((directory / f"{stem}.cert.pem").read_bytes())
    return Issued(key, cert)


def load_dev_pki(directory: Path) -> DevPki:
    """Read a hierarchy written by :func:`create_dev_pki`."""
    return DevPki(
        directory=directory,
        root=_load(directory, "root-ca"),
        ap_ca=_load(directory, "ap-ca"),
        smp_ca=_load(directory, "smp-ca"),
        access_points={stem: _load(directory, stem) for stem, *_ in ACCESS_POINTS},
        smp=_load(directory, "smp"),
    )


def dev_pki_complete(directory: Path) -> bool:
    stems = ["root-ca", "ap-ca", "smp-ca", "smp", *(s for s, *_ in ACCESS_POINTS)]
    return all((directory / f"{s}.cert.pem").exists() for s in stems)
