"""The signed AS4 receipts other access points sent in 2022 (``../shared/corpora/receipts``): each
file is an HTTP response as captured, status line left out, headers, a blank line, then the
body (already de-chunked, although a ``Transfer-Encoding: chunked`` header remains)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from tests.support.paths import ROOT

RECEIPTS = ROOT.parent / "shared" / "corpora" / "receipts"
_BST = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}BinarySecurityToken"


@dataclass(frozen=True)
class CapturedResponse:
    name: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers["content-type"]

    def token_certificate(self) -> x509.Certificate:
        """The certificate in the message's BinarySecurityToken, read without the AS4 layer."""
        tokens = list(etree.fromstring(self.body).iter(_BST))
        assert len(tokens) == 1, f"{self.name}: {len(tokens)} BinarySecurityTokens"
        return x509.load_der_x509_certificate(base64.b64decode("".join((tokens[0].text or "").split())))


def receipts_dir() -> Path:
    """The corpus folder; the test is skipped, saying where it looked, when it is absent."""
    if not RECEIPTS.is_dir():
        pytest.skip(f"the captured receipts are read from {RECEIPTS}, which is absent here")
    return RECEIPTS


def read_response(name: str) -> CapturedResponse:
    raw = (receipts_dir() / name).read_bytes()
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(separator)
        if found:
            break
    else:
        raise AssertionError(f"{name}: no blank line ends the HTTP headers")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return CapturedResponse(name, headers, body)
