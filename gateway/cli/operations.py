"""Operator commands: ``company add`` (register a receiving company) and ``send``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg

import smp
from gateway.cli.registry import Commands
from gateway.core.config import Settings
from gateway.core.database import create_pool
from gateway.dev.postgres import database_url
from gateway.directory.errors import BadParticipant, UnknownProfile
from gateway.directory.profiles import profile_services, receiving_participant
from gateway.directory.queries import company_profiles, participant_country
from gateway.directory.registration import enrol_company, register_profiles
from gateway.directory.states import ProfileStatus
from gateway.documents.business import BusinessDocument
from gateway.inbound import queries as inbound_queries
from gateway.outbound.states import OutboundState
from gateway.outbound.submission import (
    Derived,
    DuplicateDocument,
    SubmissionError,
    SubmitRequest,
    derive_submission,
    submit,
)
from gateway.runtime import build_runtime
from gateway.security.credentials import create_api_key, create_operator
from gateway.security.identity import load_cert

__all__ = ["register"]


class OpsError(Exception):
    """A user-facing failure of an operator command."""


def company_participant(country: str, business_id: str, given: str | None) -> smp.ParticipantId:
    """The participant id: as given, or the country's default scheme with the business id."""
    try:
        return receiving_participant(country, business_id, given)
    except BadParticipant as exc:
        raise OpsError(str(exc)) from None


async def _company_add(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    participant = company_participant(args.country, args.business_id, args.participant)
    names = [p.strip() for p in args.profiles.split(",") if p.strip()]
    try:
        services = profile_services(names, args.profile_version)
    except UnknownProfile as exc:
        raise OpsError(f"unknown profile {exc.profile!r} version {exc.version!r}") from None
    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        try:
            async with pool.acquire() as conn:
                company_id = await enrol_company(
                    conn,
                    name=args.name,
                    country=args.country,
                    business_id=args.business_id,
                    participant=participant,
                    services=services,
                    operator_id=uuid.UUID(args.operator) if args.operator else None,
                )
                _, api_key = await create_api_key(conn, company_id=company_id, label="cli")
            runtime = build_runtime(settings, pool)
            try:
                # The same path as the API: an SML that refuses leaves the profiles pending
                # with its text, tried again by a serving gateway.
                await register_profiles(
                    pool, runtime.registrar, company_id, names, args.profile_version, str(participant),
                    existing_ok=True,
                )  # fmt: skip
                registrar = runtime.registrar
            finally:
                await runtime.close()
            profiles = [p for p in await company_profiles(pool, company_id) if p.value.lower() == participant.key]
        finally:
            await pool.close()
    live = [p for p in profiles if p.status is not ProfileStatus.REMOVED]
    waiting = [p for p in live if p.status is not ProfileStatus.ACTIVE]
    return {
        "company_id": str(company_id),
        "api_key": api_key,
        "participant_id": str(participant),
        "document_types": sorted({d for d, _ in services}),
        "registered_in_sml": registrar is not None and bool(live) and not waiting,
        "sml": "off (a local zone without an SML to register in)" if registrar is None else None,
        "profiles": [
            {"profile": p.profile, "version": p.version, "status": str(p.status), "reason": p.status_reason}
            for p in live
        ],
    }


def _derive(args: argparse.Namespace, document: bytes, country: str | None) -> Derived:
    return derive_submission(
        document, sender=args.sender, receiver=args.receiver, document_type=args.document_type,
        process=args.process, country_c1=country,
    )  # fmt: skip


async def _sender_country(pool: asyncpg.Pool, args: argparse.Namespace, document: bytes) -> str | None:
    """The registered country of the sending company, for a document that does not say it."""
    sender = args.sender or BusinessDocument.parse(document).sender_endpoint
    try:
        participant = smp.ParticipantId.parse(sender or "")
    except smp.IdentifierError:
        return None
    return await participant_country(pool, participant.scheme, participant.value)


async def _send(args: argparse.Namespace, settings: Settings, document: bytes) -> tuple[int, dict[str, Any]]:
    # Bad input fails before the database starts; only a missing country waits for it.
    derived: Derived | None = None
    try:
        derived = _derive(args, document, args.country)
    except SubmissionError as exc:
        if exc.field != "country_c1":
            raise OpsError(f"cannot send: {exc}") from None
        missing_country = exc
    endpoint_cert = load_cert(Path(args.endpoint_cert), "--endpoint-cert") if args.endpoint_cert else None
    if bool(args.endpoint) != bool(endpoint_cert):
        raise OpsError("--endpoint and --endpoint-cert go together")
    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        try:
            if derived is None:
                country = await _sender_country(pool, args, document)
                if country is None:
                    raise OpsError(f"cannot send: {missing_country}")
                try:
                    derived = _derive(args, document, country)
                except SubmissionError as again:
                    raise OpsError(f"cannot send: {again}") from None
            window = None if args.allow_duplicate else settings.duplicate_window or None
            request = SubmitRequest(
                derived, settings.retry_window, endpoint_url=args.endpoint, endpoint_cert=endpoint_cert,
                duplicate_window=window,
            )  # fmt: skip
            try:
                job_id = (await submit(pool, request)).job_id
            except DuplicateDocument as exc:
                raise OpsError(
                    f"cannot send: the document was sent already as job {exc.earlier_job_id} "
                    "(--allow-duplicate sends it again)"
                ) from None
            runtime = build_runtime(settings, pool)
            try:
                status = await runtime.outbound_worker().deliver_and_wait(job_id)
            finally:
                await runtime.close()
        finally:
            await pool.close()
    assert status is not None
    report = {
        "job_id": job_id,
        "state": status.state,
        "sender": str(derived.sender),
        "receiver": str(derived.receiver),
        "document_type": str(derived.document_type),
        "process": str(derived.process),
        "attempts": status.attempts,
        "error_code": status.error_code,
        "last_error": status.last_error,
        "audit": [{"at": at.isoformat(), "state": state, "reason": reason} for at, state, reason in status.audit],
    }
    code = {OutboundState.DELIVERED: 0, OutboundState.FAILED: 1}.get(status.state, 3)
    return code, report


async def _operator_add(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        try:
            operator_id, key = await create_operator(pool, args.name)
        finally:
            await pool.close()
    return {"operator_id": str(operator_id), "api_key": key}


def _operator_command(args: argparse.Namespace, settings: Settings) -> int:
    json.dump(asyncio.run(_operator_add(args, settings)), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _company_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = asyncio.run(_company_add(args, settings))
    except OpsError as exc:
        print(f"peppol-gateway: {exc}", file=sys.stderr)
        return 1
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    for profile in report["profiles"]:
        if profile["status"] != ProfileStatus.ACTIVE:
            print(
                f"peppol-gateway: {profile['profile']} is {profile['status']}: {profile['reason']}"
                + (" (tried again by the serving gateway)" if profile["status"] == ProfileStatus.PENDING else ""),
                file=sys.stderr,
            )
    return 0


def _send_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        try:
            document = Path(args.file).read_bytes()
        except OSError as exc:
            raise OpsError(f"cannot read {args.file}: {exc.strerror}") from None
        code, report = asyncio.run(_send(args, settings, document))
    except OpsError as exc:
        print(f"peppol-gateway: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"job {report['job_id']}: {report['state']} ({report['sender']} -> {report['receiver']})")
        for line in report["audit"]:
            print(f"  {line['at']}  {line['state']:<10} {line['reason']}")
    return code


async def _mailbox(args: argparse.Namespace, settings: Settings) -> list[inbound_queries.MailboxLine]:
    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        try:
            return await inbound_queries.mailbox_lines(pool, entry_id=args.show, limit=args.limit)
        finally:
            await pool.close()


def _mailbox_command(args: argparse.Namespace, settings: Settings) -> int:
    rows = asyncio.run(_mailbox(args, settings))
    if args.show is not None:
        if not rows:
            print(f"peppol-gateway: no mailbox entry {args.show}", file=sys.stderr)
            return 1
        if rows[0].content is None:
            print(f"peppol-gateway: entry {args.show} is archived; read it through the API", file=sys.stderr)
            return 1
        sys.stdout.write(rows[0].content.decode("utf-8", "replace"))
        return 0
    if not rows:
        print("the mailbox is empty")
    for r in rows:
        doc = r.document_type.split("##", 1)[0].rsplit("::", 1)[-1]
        print(
            f"{r.id:>5}  {r.received_at:%Y-%m-%d %H:%M:%S}  {r.company:<20} {doc:<14} "
            f"from {r.sender_value} via {r.sending_ap}  ({r.payload_bytes} bytes)"
        )
    return 0


def register(commands: Commands) -> None:
    m = commands.add(
        "mailbox",
        _mailbox_command,
        help="list received documents",
        description="List the documents this access point received, newest first; --show N prints one.",
    )
    m.add_argument("--show", type=int, help="print the envelope and document of entry N")
    m.add_argument("--limit", type=int, default=50, help="how many entries to list (default 50)")

    company_sub = commands.group(
        "company",
        help="register a receiving company",
        description="Register a verified company and its Peppol participant: published in our SMP "
        "and in the SML (a local one, or the Peppol SML through its management interface). If the "
        "SML refuses, the profiles stay pending with its reason and a serving gateway tries again.",
    )
    add = company_sub.add(
        "add",
        _company_command,
        help="add a company that receives documents",
        description="Add a verified company, publish its participant in our SMP and register it in the SML.",
    )
    add.add_argument("--name", required=True)
    add.add_argument("--country", required=True, help="ISO 3166 code, e.g. NO")
    add.add_argument("--business-id", required=True, help="e.g. the organisation number")
    add.add_argument("--participant", help="participant id (default: from country and business id)")
    add.add_argument("--profiles", default="INVOICE_AND_CREDIT_NOTE", help="comma-separated receiving profiles")
    add.add_argument("--profile-version", default="PEPPOLBIS30", help="PEPPOLBIS30 or EHF30")
    add.add_argument("--operator", help="link the company to this operator id")

    operator_sub = commands.group(
        "operator",
        help="create an operator (API credentials for managing companies)",
        description="Create an operator and print its id and API key (shown once).",
    )
    oadd = operator_sub.add(
        "add", _operator_command, help="add an operator", description="Add an operator and print its API key once."
    )
    oadd.add_argument("--name", required=True)

    s = commands.add(
        "send",
        _send_command,
        help="send a document",
        description="Queue a document for delivery and deliver it now. A bare UBL document is wrapped "
        "in a Peppol envelope; sender, receiver, document type, process and C1 country come from "
        "the document unless given. Exit 0 delivered, 1 failed, 3 queued for a retry.",
    )
    s.add_argument("file", help="UBL document or Peppol SBD")
    s.add_argument("--from", dest="sender", help="sender participant (default: from the document)")
    s.add_argument("--to", dest="receiver", help="receiver participant (default: from the document)")
    s.add_argument("--document-type", help="document type identifier")
    s.add_argument("--process", help="process identifier")
    s.add_argument("--country", help="country of the sender (C1)")
    s.add_argument("--endpoint", help="send straight to this AS4 URL (skips SML/SMP discovery)")
    s.add_argument("--endpoint-cert", help="the receiving AP's certificate (PEM), with --endpoint")
    s.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="send even if the same document (sender, receiver, type, ID, IssueDate) was sent within "
        "documents.duplicate_window",
    )
    s.add_argument("--json", action="store_true", help="print one JSON object")
