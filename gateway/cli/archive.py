"""``peppol-gateway archive verify [KEY ...]``: check archived exchanges against their manifests."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from gateway.cli.registry import Commands
from gateway.core.config import Settings
from gateway.duties.archive import MANIFEST, verify_entry
from gateway.duties.archive_store import ArchiveError, open_archive

__all__ = ["register"]


async def _verify(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    if not settings.archive_target:
        raise ArchiveError("no archive is configured (archive.target)")
    archive = open_archive(
        settings.archive_target, s3_endpoint=settings.archive_s3_endpoint, access_key=settings.archive_s3_access_key,
        secret_key=settings.archive_s3_secret_key, region=settings.archive_s3_region,
    )  # fmt: skip
    try:
        keys = list(args.keys)
        if not keys:
            keys = sorted(
                name[: -len(MANIFEST) - 1]
                for name in await archive.list(args.prefix or "")
                if name.endswith("/" + MANIFEST)
            )
        problems: dict[str, list[str]] = {}
        for key in keys:
            found = await verify_entry(archive, key)
            if found:
                problems[key] = found
    finally:
        await archive.close()
    return {"checked": len(keys), "ok": len(keys) - len(problems), "problems": problems}


def _command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = asyncio.run(_verify(args, settings))
    except ArchiveError as exc:
        print(f"peppol-gateway: {exc}", file=sys.stderr)
        return 2
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if not report["problems"] else 1


def register(commands: Commands) -> None:
    archive_sub = commands.group(
        "archive",
        help="check the archive",
        description="Check archived exchanges: every file must match its SHA-256 in the entry's "
        "manifest.json. Exit 0 all good, 1 problems found (listed), 2 no archive.",
    )
    verify = archive_sub.add(
        "verify",
        _command,
        help="verify entries (all of them, or under --prefix, or KEYs)",
        description="Verify archived entries against their manifests: all of them, those under "
        "--prefix, or the KEYs given.",
    )
    verify.add_argument("keys", nargs="*", help="entry keys, e.g. in/2026/11/24/in-1234")
    verify.add_argument("--prefix", help="only entries under this prefix, e.g. in/2026/11/")
