"""The root of every error the gateway raises on purpose, and the errors of ``core``.

Each package has one root, derived from ``GatewayError``, so a caller can catch a whole package
(``except OutboundError``) or everything the gateway means to report (``except GatewayError``);
anything else escaping is a bug. The tree:

    GatewayError
    ├── CoreError                    gateway.core
    │   ├── ConfigError              a setting is missing or invalid (names the setting)
    │   ├── DatabaseUnavailable      PostgreSQL cannot be reached
    │   └── MigrationError           the schema files or the database's schema are inconsistent
    ├── DocumentError (documents)    SbdhError: an envelope or business document cannot be read
    ├── SecurityError (security)     credentials, identities and trust
    ├── DirectoryError (directory)   companies, participants, profiles, SML registration
    ├── OutboundError (outbound)     SubmissionError: a document cannot be sent as given
    ├── InboundError (inbound)
    ├── DutiesError (duties)         ReportError, ArchiveError, ResponseError
    ├── WebhookError (webhooks)
    ├── DevError (dev)               EmbeddedPostgresError, KnotDnsError
    ├── ApiError (api)               an HTTP answer with a stable error code
    └── CliError (cli)               a command's one-line failure
"""

from __future__ import annotations

__all__ = ["CoreError", "GatewayError"]


class GatewayError(Exception):
    """Something the gateway reports on purpose: a clear message, never a traceback."""


class CoreError(GatewayError):
    """An error of the process's foundation: settings, database, schema."""
