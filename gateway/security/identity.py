"""This access point's own keys and certificates, loaded once at start-up."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import as4
from gateway.core.config import ConfigError, Settings

__all__ = ["ApIdentity", "load_identity", "load_trust"]


class ApIdentity:
    """A key and its certificate. Every part of the gateway holds the same object, so a renewed
    certificate is swapped in once (:meth:`replace`) and used from the next message on."""

    def __init__(self, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        self._pair = (key, cert)

    @property
    def key(self) -> rsa.RSAPrivateKey:
        return self._pair[0]

    @property
    def cert(self) -> x509.Certificate:
        return self._pair[1]

    @property
    def seat_id(self) -> str:
        return as4.seat_id(self.cert)

    def replace(self, other: ApIdentity) -> None:
        self._pair = other._pair


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(setting, f"cannot read {path}: {exc.strerror}") from None


def load_key(path: Path, setting: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, setting), None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(setting, f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(setting, f"{path} is not an RSA key")
    return key


def load_cert(path: Path, setting: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path, setting))
    except ValueError:
        raise ConfigError(setting, f"{path} is not a PEM certificate") from None


def load_identity(key_path: Path, cert_path: Path, setting: str = "ap") -> ApIdentity:
    key = load_key(key_path, f"{setting}.key")
    cert = load_cert(cert_path, f"{setting}.cert")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise ConfigError(f"{setting}.key", "the private key does not belong to the certificate")
    return ApIdentity(key, cert)


def load_trust(paths: tuple[Path, ...], setting: str) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            certs += x509.load_pem_x509_certificates(_read(path, setting))
        except ValueError:
            raise ConfigError(setting, f"{path} holds no PEM certificates") from None
    return certs


def settings_identity(settings: Settings) -> ApIdentity:
    return load_identity(settings.ap_key, settings.ap_cert)
