"""``peppol-gateway sml``: our SMP in the Peppol SML (status, register, change-certificate) and
moving participants between SMPs (migrate-out, migrate-in)."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import smp
from gateway.cli.registry import Commands, ExitCode
from gateway.core.config import ConfigError, Settings
from gateway.core.database import create_pool
from gateway.dev.postgres import database_url
from gateway.directory import sml
from gateway.directory.errors import NotFound, SmlRefused, SmlUnavailable
from gateway.directory.profiles import profile_view

__all__ = ["register"]


class SmlCommandError(Exception):
    """A user-facing failure of an ``sml`` command."""


def _client(settings: Settings) -> smp.SmlManagementClient:
    try:
        return sml.management_client(settings)
    except SmlUnavailable as exc:
        raise SmlCommandError(str(exc)) from None


def _smp_url(settings: Settings) -> str:
    if settings.smp_url:
        return settings.smp_url
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/smp"
    raise SmlCommandError("set smp.url (or http.public_url): the address the SML publishes for our participants")


async def _physical_address(smp_url: str) -> str:
    """The IPv4 address the SMP's host name resolves to (the SML keeps one with the record)."""
    host = urlsplit(smp_url).hostname or ""
    try:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, 443, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except OSError:
        raise SmlCommandError(f"cannot resolve {host!r}: give --physical-address IP") from None
    return str(infos[0][4][0])


def _participant(text: str) -> smp.ParticipantId:
    try:
        return smp.ParticipantId.parse(text)
    except smp.IdentifierError as exc:
        raise SmlCommandError(str(exc)) from None


async def _status(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    status = await sml.sml_status(_client(settings))
    record = status.record
    return {
        "sml": status.url,
        "smp_id": status.smp_id,
        "registered": record is not None,
        "logical_address": record.logical_address if record else None,
        "physical_address": record.physical_address if record else None,
        "participants": sorted(str(p) for p in status.participants),
    }


async def _register(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    logical = smp.logical_address(_smp_url(settings), settings.sml_zone)
    physical = args.physical_address or await _physical_address(logical)
    done = await sml.register_smp(_client(settings), logical, settings.sml_zone, physical)
    return {"smp_id": settings.smp_id, "logical_address": logical, "physical_address": physical, "result": done}


async def _change_certificate(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    try:
        data = await asyncio.to_thread(Path(args.certificate).read_bytes)
    except OSError as exc:
        raise SmlCommandError(f"cannot read {args.certificate}: {exc.strerror}") from None
    try:
        migration = date.fromisoformat(args.migration_date)
    except ValueError:
        raise SmlCommandError(f"--from {args.migration_date!r} is not YYYY-MM-DD") from None
    try:
        await sml.change_certificate(_client(settings), data, migration)
    except ValueError as exc:
        raise SmlCommandError(f"{args.certificate}: {exc}") from None
    return {"smp_id": settings.smp_id, "certificate": args.certificate, "from": migration.isoformat()}


async def _migrate_out(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    participant = _participant(args.participant)
    key = await sml.migrate_out(_client(settings), participant)
    return {"participant_id": str(participant), "migration_key": key}


async def _migrate_in(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    participant = _participant(args.participant)
    client = _client(settings)
    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        try:
            profiles = await sml.migrate_in(pool, client, participant, args.key)
        finally:
            await pool.close()
    return {"participant_id": str(participant), "profiles": [profile_view(p) for p in profiles]}


def _text(command: str, report: dict[str, Any]) -> str:
    if command == "status":
        if not report["registered"]:
            return f"SML {report['sml']}: SMP {report['smp_id']} is not registered (run `sml register`)"
        lines = [
            f"SML       {report['sml']}",
            f"SMP id    {report['smp_id']}",
            f"logical   {report['logical_address']}",
            f"physical  {report['physical_address']}",
            f"participants ({len(report['participants'])}):",
        ]
        return "\n".join(lines + [f"  {p}" for p in report["participants"]])
    if command == "register":
        return f"SMP {report['smp_id']} {report['result']}: {report['logical_address']} ({report['physical_address']})"
    if command == "change-certificate":
        return f"new certificate {report['certificate']} announced; the SML switches to it on {report['from']}"
    if command == "migrate-out":
        return (
            f"{report['participant_id']} may move to another SMP; give its operator this migration key:\n"
            f"{report['migration_key']}"
        )
    return f"{report['participant_id']} is now registered by our SMP ({len(report['profiles'])} profiles active)"


_ACTIONS: dict[str, Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, dict[str, Any]]]] = {
    "status": _status,
    "register": _register,
    "change-certificate": _change_certificate,
    "migrate-out": _migrate_out,
    "migrate-in": _migrate_in,
}


def _sml_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = asyncio.run(_ACTIONS[args.sml_command](args, settings))
    except (SmlCommandError, NotFound, ConfigError, smp.RegistrationError, SmlRefused) as exc:
        print(f"peppol-gateway: {exc}", file=sys.stderr)  # the SML's own fault text when it refused
        return ExitCode.FAILED
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_text(args.sml_command, report))
    return ExitCode.OK


def register(commands: Commands) -> None:
    actions = commands.group(
        "sml",
        help="our SMP in the Peppol SML, and moving participants between SMPs",
        description="Manage our SMP's record in the SML (sml.zone, sml.management_url, smp.id, over "
        "mutual TLS with smp.key/smp.cert). Exit 0 done, 1 failed (a local problem, or the SML refused: "
        "its fault text is printed).",
    )

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        return actions.add(name, _sml_command, help=summary, description=summary[0].upper() + summary[1:] + ".")

    status = action("status", "what the SML holds for our SMP id, and our participants there")
    record = action("register", "create or update our SMP record from the settings")
    record.add_argument("--physical-address", help="IPv4 address of the SMP (default: smp.url's host resolved)")
    change = action("change-certificate", "announce our next SMP certificate")
    change.add_argument("certificate", metavar="NEW_CERT.pem", help="the new SMP certificate (PEM or DER)")
    change.add_argument("--from", dest="migration_date", required=True, metavar="YYYY-MM-DD",
                        help="the day the SML starts accepting only the new certificate")  # fmt: skip
    out = action("migrate-out", "let another SMP take a participant over: print its key")
    out.add_argument("participant", metavar="PARTICIPANT")
    into = action("migrate-in", "take a participant over with the key its SMP gave")
    into.add_argument("participant", metavar="PARTICIPANT")
    into.add_argument("--key", required=True, help="the migration key from the participant's current SMP")
    for parser in (status, record, change, out, into):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
