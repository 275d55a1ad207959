"""``peppol-gateway lookup``: where would a document to this participant go, and why."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

import as4
import smp
from gateway.cli.registry import Commands
from gateway.core.config import ConfigError, Settings
from gateway.directory.discovery import certificate_facts, failure_reason
from gateway.security.anchors import trust_in_force

__all__ = ["lookup_command", "register"]

DEFAULT_DOCUMENT = smp.profile_services("INVOICE_AND_CREDIT_NOTE")[0]


class LookupFailed(Exception):
    """Discovery failed; the message is one line naming what failed."""


def _read_certs(paths: list[Path], what: str) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            certs += as4.load_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise LookupFailed(f"cannot read {what} {path}: {exc}") from None
    return certs


def _default_trust(settings: Settings, role: str, zone: str) -> list[x509.Certificate]:
    """The trust in force for ``zone``: the shipped Peppol CAs for production and test."""
    try:
        return list(trust_in_force(settings, role, zone).certificates)
    except ConfigError as exc:
        raise LookupFailed(f"cannot read {role.upper()} trust: {exc}") from None


async def _lookup(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    try:
        participant = smp.ParticipantId.parse(args.participant)
        document_type = (
            smp.DocumentTypeId.parse(args.document_type) if args.document_type else DEFAULT_DOCUMENT.document_type
        )
        process = smp.ProcessId.parse(args.process) if args.process else None
    except smp.IdentifierError as exc:
        raise LookupFailed(f"invalid identifier: {exc}") from None
    zone = args.sml or settings.sml_zone
    smp_trust = (
        _read_certs([Path(args.smp_trust)], "SMP trust") if args.smp_trust else _default_trust(settings, "smp", zone)
    )
    ap_trust = _read_certs([Path(args.ap_trust)], "AP trust") if args.ap_trust else _default_trust(settings, "ap", zone)
    sml = smp.SmlLookup(zone, args.dns or settings.sml_dns)
    client = smp.SmpClient(sml, smp_trust=smp_trust)
    report: dict[str, Any] = {
        "participant": str(participant),
        "document_type": str(document_type),
        "sml_zone": sml.zone,
        "sml_name": smp.dns_name(participant, sml.zone),
    }
    try:
        try:
            smp_url, supported = await client.service_group(participant)
            report["smp_url"] = smp_url
            report["supported_document_types"] = [str(d) for d in supported]
        except smp.DiscoveryError as exc:
            raise LookupFailed(failure_reason(exc)) from None
        try:
            route = await client.find_endpoint(participant, document_type, process)
        except smp.DiscoveryError as exc:
            raise LookupFailed(failure_reason(exc)) from None
    finally:
        await client.close()
    cert = route.endpoint.certificate
    steps = [{"step": s, "ok": True} for s in route.steps]
    try:
        as4.check_ap_certificate(cert, ap_trust)
        steps.append({"step": "endpoint certificate issued by a trusted AP CA", "ok": True})
        trusted = True
    except as4.FailedAuthentication as exc:
        steps.append({"step": f"endpoint certificate: {exc.reason}", "ok": False})
        trusted = False
    report.update(
        {
            "process": str(route.process),
            "endpoint": {
                "url": route.endpoint.url,
                "transport_profile": route.endpoint.transport_profile,
                **certificate_facts(cert),
                "technical_contact": route.endpoint.technical_contact,
            },
            "smp_certificate_subject": route.smp_certificate.subject.rfc4514_string(),
            "steps": steps,
        }
    )
    if not trusted:
        report["error"] = "untrusted endpoint certificate"
    return report


def _print_text(report: dict[str, Any]) -> None:
    print(f"participant     {report['participant']}")
    print(f"SML name        {report['sml_name']}")
    print(f"SMP             {report.get('smp_url', '-')}")
    print("supports")
    for doc in report.get("supported_document_types", []):
        print(f"  - {doc}")
    endpoint = report.get("endpoint")
    if endpoint:
        print(f"document type   {report['document_type']}")
        print(f"process         {report['process']}")
        print(f"endpoint        {endpoint['url']} ({endpoint['transport_profile']})")
        print(f"certificate     {endpoint['certificate_subject']}")
        print(
            f"                valid {endpoint['certificate_valid_from'][:10]}"
            f" .. {endpoint['certificate_valid_until'][:10]}"
        )
        print("checks")
        for step in report["steps"]:
            print(f"  [{'ok' if step['ok'] else 'FAIL'}] {step['step']}")


def lookup_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = asyncio.run(_lookup(args, settings))
    except LookupFailed as exc:
        if args.json:
            json.dump({"participant": args.participant, "error": str(exc)}, sys.stdout)
            sys.stdout.write("\n")
        print(f"peppol-gateway: lookup failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(report)
    if "error" in report:
        print(f"peppol-gateway: lookup failed: {report['error']}", file=sys.stderr)
        return 1
    return 0


def register(commands: Commands) -> None:
    p = commands.add(
        "lookup",
        lookup_command,
        help="find a participant's SMP and AS4 endpoint",
        description="Resolve a participant through the SML (U-NAPTR) to its SMP, verify the SMP's "
        "signed answer and print the chosen AS4 endpoint with each verification step. Without "
        "--document-type the BIS Billing 3.0 invoice is looked up.",
    )
    p.add_argument("participant", help="e.g. 0192:991825827 or iso6523-actorid-upis::0192:991825827")
    p.add_argument("--document-type", help="document type identifier (scheme::value or value)")
    p.add_argument("--process", help="process identifier (default: the first one offered)")
    p.add_argument("--sml", help="production, test, or a DNS zone (default: sml.zone setting)")
    p.add_argument("--dns", help="send DNS queries to HOST:PORT instead of the system resolver")
    p.add_argument("--smp-trust", help="PEM file of SMP CA certificates to trust")
    p.add_argument("--ap-trust", help="PEM file of AP CA certificates for the endpoint certificate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
