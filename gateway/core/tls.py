"""The TLS settings of the gateway's own outbound HTTPS (webhooks, the S3 archive, OCSP/CRL
when served over https): the server certificate verified against the system's CA store, the
host name checked, and TLS 1.2 or newer. AS4 sends and SMP fetches use the same rules
(``as4``'s and ``smp``'s own contexts)."""

from __future__ import annotations

import ssl
from functools import cache

__all__ = ["tls_context"]


@cache
def tls_context() -> ssl.SSLContext:
    """The one client context of this process: verifying, host-name checking, TLS 1.2 at least."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context
