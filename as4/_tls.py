"""The TLS settings of every outbound AS4 connection: the server certificate verified against
the system's CA store (Peppol AS4 endpoints use commercial TLS certificates, not the Peppol
PKI), the host name checked, and TLS 1.2 or newer (Peppol's transport security minimum)."""

from __future__ import annotations

import ssl
from functools import cache

__all__ = ["new_tls_context", "tls_context"]


def new_tls_context() -> ssl.SSLContext:
    """A fresh client context: verifying, host-name checking, TLS 1.2 at least."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context


@cache
def tls_context() -> ssl.SSLContext:
    """The one context of this process (loading the CA store once; contexts are shareable)."""
    return new_tls_context()
