"""The security domain's failures, all under one root so callers can catch the domain at once.

::

    SecurityError
    ├── CredentialError            a secret or token that does not admit the caller
    │   ├── InvalidClient          unknown client id or secret, or its key revoked or expired
    │   ├── InvalidScope           scopes asked for that the key does not carry
    │   └── InvalidToken           a bearer token unknown or expired, or its key revoked or expired
    ├── trust.Revoked              a peer certificate revoked by its CA (also as4.FailedAuthentication)
    └── trust.RevocationUnknown    no revocation answer under the hard-fail policy (likewise)
"""

from __future__ import annotations

from gateway.core.errors import GatewayError

__all__ = ["CredentialError", "InvalidClient", "InvalidScope", "InvalidToken", "SecurityError"]


class SecurityError(GatewayError):
    """The root of every failure of the security domain."""


class CredentialError(SecurityError):
    """A credential that does not admit its holder; the message says why, for the caller."""


class InvalidClient(CredentialError):
    """The client id and secret do not name a usable API key."""


class InvalidScope(CredentialError):
    """The caller asked for scopes its API key does not carry."""


class InvalidToken(CredentialError):
    """The bearer token does not (or no longer) admit the caller."""
