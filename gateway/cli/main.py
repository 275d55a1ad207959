"""The ``peppol-gateway`` command line.

Every failure a user can cause ends in one line on stderr and a non-zero exit status, never a
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg

from gateway.cli import archive, as4, lookup, operations, report, sml
from gateway.cli.as4 import KeyFileError
from gateway.cli.registry import Commands, ExitCode, Handler
from gateway.core.config import ConfigError, Settings, load_settings
from gateway.core.database import DatabaseUnavailable
from gateway.core.errors import GatewayError
from gateway.core.logs import configure_logging
from gateway.core.migrate import MigrationError, apply_migrations
from gateway.core.version import __version__
from gateway.dev.postgres import EmbeddedPostgresError, database_url

__all__ = ["main"]

EXIT_FAILURE = ExitCode.FAILED
EXIT_USAGE = ExitCode.USAGE
EXIT_NOT_VALIDATED = ExitCode.NOT_DONE  # validate: a rule layer that applies could not run; never "valid"


class CliError(GatewayError):
    """A user-facing failure: printed as one line, exit status 1."""


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli.serve import serve

    if args.host:
        settings = _replace(settings, listen_host=args.host)
    if args.port is not None:
        settings = _replace(settings, listen_port=args.port)
    asyncio.run(serve(settings))
    return 0


def _replace(settings: Settings, **changes: object) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


def _cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from gateway.duties.validation import validate_document

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"peppol-gateway: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    result = validate_document(data)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(f"{result.status.upper() if result.status != 'valid' else 'valid'}: {result.document or args.file}")
        for layer, state in result.layer_states().items():
            reason = result.layers_skipped.get(layer)
            print(f"  {layer:<8} {state}" + (f" ({reason})" if reason else ""))
        for finding in result.findings:
            print(f"  [{finding.flag}] {finding.layer} {finding.rule_id}: {finding.text}")
    if any(f.layer == "xml" for f in result.findings):
        return 2
    if not result.validated:
        print(f"peppol-gateway: not validated: {next(iter(result.layers_skipped.values()))}", file=sys.stderr)
        return EXIT_NOT_VALIDATED
    return 0 if result.valid else 1


def _cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.dev.sandbox import run_sandbox

    return run_sandbox(Path.cwd(), settings.data_dir)


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> list[int]:
        async with database_url(settings) as dsn:
            try:
                conn = await asyncpg.connect(dsn, timeout=10)
            except (OSError, asyncpg.PostgresError) as exc:
                raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
            try:
                return await apply_migrations(conn)
            finally:
                await conn.close()

    applied = asyncio.run(run())
    if applied:
        print("applied migrations: " + ", ".join(f"{v:04d}" for v in applied))
    else:
        print("schema is up to date")
    return 0


def _cmd_dev_pki(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.dev.pki import create_dev_pki, dev_pki_complete

    directory = Path(args.dir)
    if dev_pki_complete(directory):
        if args.if_missing:
            return 0
        if not args.force:
            raise CliError(f"{directory} already holds a dev PKI; use --force to replace it")
    pki = create_dev_pki(directory)
    print(f"development PKI written to {directory}/ (for local use only):")
    print(f"  root CA  {pki.root.cert.subject.rfc4514_string()}")
    print(f"  AP CA    {pki.ap_ca.cert.subject.rfc4514_string()}")
    print(f"  SMP CA   {pki.smp_ca.cert.subject.rfc4514_string()}")
    for stem, issued in pki.access_points.items():
        print(f"  {stem:<8} {issued.cert.subject.rfc4514_string()}")
    print(f"  smp      {pki.smp.cert.subject.rfc4514_string()}")
    return 0


def _register_own(commands: Commands) -> None:
    """The commands that live in this module: serve, migrate, dev-pki, validate, sandbox."""
    p = commands.add(
        "serve",
        _cmd_serve,
        help="run the gateway service",
        description="Run the HTTP service. Without DATABASE_URL an embedded PostgreSQL is started "
        "in the data folder and stopped on exit. Stops cleanly on SIGTERM or Ctrl-C.",
    )
    p.add_argument("--host", help="listen address (overrides http.host)")
    p.add_argument("--port", type=int, help="listen port (overrides http.port)")

    commands.add(
        "migrate",
        _cmd_migrate,
        help="apply pending database migrations",
        description="Apply pending schema migrations in one transaction and exit. Running it again is a no-op.",
    )

    p = commands.add(
        "dev-pki",
        _cmd_dev_pki,
        help="create the development PKI",
        description="Create a root CA, an AP CA, an SMP CA, two access point certificates "
        "(POP000001, POP000002) and an SMP certificate for local use.",
    )
    p.add_argument("--dir", default="certs-dev", help="output folder (default: certs-dev)")
    p.add_argument("--if-missing", action="store_true", help="do nothing if it already exists")
    p.add_argument("--force", action="store_true", help="replace an existing PKI")

    p = commands.add(
        "validate",
        _cmd_validate,
        help="validate a document (UBL schema, EN 16931, Peppol BIS rules)",
        description="Validate a UBL document or a Peppol SBD and report each layer (xml, schema, "
        "en16931, peppol) as run, not run or not applicable. Exit 0 valid, 1 invalid (the failed "
        "rules are listed), 2 unreadable input, 3 not validated: a rule layer that applies could not "
        "run (the [validation] extra is not installed), so the document is neither valid nor invalid.",
    )
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    commands.add(
        "sandbox",
        _cmd_sandbox,
        help="run a complete local Peppol network (what `make run` starts)",
        description="Start an embedded PostgreSQL, a DNS server as the SML zone and two access points "
        "(AP-A, AP-B) with demo companies; write .sandbox/sandbox.json; stop everything on Ctrl-C.",
    )


# Every command module, in the order its commands appear in --help.
REGISTER: tuple[Callable[[Commands], None], ...] = (
    _register_own,
    lookup.register,
    operations.register,
    report.register,
    archive.register,
    sml.register,
    as4.register,
)


def build_parser() -> tuple[argparse.ArgumentParser, Commands]:
    parser = argparse.ArgumentParser(
        prog="peppol-gateway",
        description="Peppol access point and network gateway. Exit status: 0 done, 1 the check or "
        "the work failed, 2 bad input or usage, 3 not done yet (queued for a retry, or a check that "
        "could not run), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML configuration file (default: $PEPPOL_CONFIG, else built-in defaults)",
    )
    commands = Commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    for register in REGISTER:
        register(commands)
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"peppol-gateway: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    level = settings.log_level
    if args.command not in ("serve", "sandbox") and level in ("debug", "info"):
        level = "warning"  # one-shot commands print their results, not the service's events
    configure_logging(settings.log_format, level)
    try:
        run: Handler = args.run
        return run(args, settings)
    except ConfigError as exc:
        print(f"peppol-gateway: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (
        CliError,
        EmbeddedPostgresError,
        DatabaseUnavailable,
        MigrationError,
        KeyFileError,
    ) as exc:
        print(f"peppol-gateway: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except OSError as exc:
        print(f"peppol-gateway: {exc}", file=sys.stderr)
        return EXIT_FAILURE
