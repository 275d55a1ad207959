"""``peppol-gateway report tsr|eusr --month YYYY-MM [--out FILE] [--send]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli.registry import Commands
from gateway.core.config import Settings
from gateway.core.database import create_pool
from gateway.dev.postgres import database_url
from gateway.duties.errors import ReportError
from gateway.duties.provider import ensure_provider
from gateway.duties.reporting import previous_month
from gateway.outbound.states import OutboundState
from gateway.runtime import build_runtime

__all__ = ["register"]


async def _report(args: argparse.Namespace, settings: Settings) -> tuple[int, dict[str, Any], bytes]:
    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        try:
            runtime = build_runtime(settings, pool)
            try:
                provider = await ensure_provider(pool, runtime.identity, runtime.registrar)
                service = runtime.report_service(provider)
                report = await service.build(args.kind.upper(), args.month, store_it=args.send)
                summary: dict[str, Any] = {
                    "kind": report.kind,
                    "month": args.month,
                    "valid": report.result.valid,
                    "errors": report.result.as_json()["errors"],
                    "rules": report.result.artefacts,
                }
                code = 0 if report.result.valid else 1
                if args.send and report.result.valid:
                    job = await service.send(report)
                    status = await runtime.outbound_worker().deliver_and_wait(job)
                    summary.update(job_id=job, state=status.state, error=status.last_error)
                    code = {OutboundState.DELIVERED: 0, OutboundState.FAILED: 1}.get(status.state, 3)
            finally:
                await runtime.close()
        finally:
            await pool.close()
    return code, summary, report.content


def _command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        code, summary, content = asyncio.run(_report(args, settings))
    except ReportError as exc:
        print(f"peppol-gateway: {exc.message}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_bytes(content)
    elif not args.send:
        sys.stdout.write(content.decode("utf-8") + "\n")
    json.dump(summary, sys.stderr if not (args.out or args.send) else sys.stdout, indent=2)
    (sys.stderr if not (args.out or args.send) else sys.stdout).write("\n")
    return code


def register(commands: Commands) -> None:
    from datetime import UTC, datetime

    p = commands.add(
        "report",
        _command,
        help="build (and send) a Peppol TSR or EUSR",
        description="Build this access point's Transaction Statistics Report (tsr) or End User "
        "Statistics Report (eusr) for a month from the recorded exchanges and check it against the "
        "official reporting rules. Prints the XML (or writes --out); --send stores it and sends it "
        "to OpenPeppol's reporting participant. Exit 0 valid (and delivered), 1 invalid or failed, "
        "2 bad arguments, 3 queued for a retry.",
    )
    p.add_argument("kind", choices=("tsr", "eusr"))
    p.add_argument("--month", default=previous_month(datetime.now(UTC).date()), help="YYYY-MM (default: last month)")
    p.add_argument("--out", help="write the report to this file")
    p.add_argument("--send", action="store_true", help="store it and send it now")
