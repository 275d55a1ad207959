"""Which release of each set of official validation rules applies to a document: the table of
releases with the dates OpenPeppol gives them (``rule_versions.toml``, data, not code) and the
pure choice by the document's date. Where the artefacts lie: :func:`rules_dir`, filled by
``.ci/validation-rules`` from the rule jars on Maven Central.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

__all__ = ["RULES_ENV", "Release", "RuleTable", "in_force", "load_table", "rules_dir"]

RULES_ENV = "PEPPOL_VALIDATION_RULES"
TABLE = Path(__file__).with_name("rule_versions.toml")
FETCH_HINT = "run .ci/validation-rules, or point PEPPOL_VALIDATION_RULES at a directory it filled"


@dataclass(frozen=True)
class Release:
    """One published release: in force from ``mandatory``; from ``published`` on it may be used
    already, alongside the one it replaces."""

    kind: str  # "bis_billing", "mls", "eusr", "tsr"
    version: str
    published: date
    mandatory: date
    path: str  # inside the rules directory: a folder (bis_billing) or a stylesheet


@dataclass(frozen=True)
class RuleTable:
    releases: dict[str, tuple[Release, ...]]  # by kind, oldest first
    ubl_dir: str
    ubl_label: str
    jars: tuple[str, ...]


def rules_dir() -> Path:
    """``$PEPPOL_VALIDATION_RULES``, else the package's own ``artefacts`` folder (not in git)."""
    configured = os.environ.get(RULES_ENV)
    return Path(configured) if configured else Path(__file__).with_name("artefacts")


@cache
def load_table(path: Path = TABLE) -> RuleTable:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    releases: dict[str, tuple[Release, ...]] = {}
    for kind in ("bis_billing", "mls", "eusr", "tsr"):
        rows = [
            Release(kind, row["version"], row["published"], row["mandatory"], row.get("dir") or row["file"])
            for row in data.get(kind, [])
        ]
        releases[kind] = tuple(sorted(rows, key=lambda r: r.mandatory))
    return RuleTable(releases, data["ubl"]["dir"], data["ubl"]["label"], tuple(data["source"]["jars"]))


def in_force(releases: tuple[Release, ...], day: date) -> list[Release]:
    """The releases a document dated ``day`` may follow, the one in force first: the newest whose
    mandatory date has come (the oldest when the day precedes them all), then any newer one
    already published whose mandatory date has not (the transition window, when both are
    valid)."""
    if not releases:
        return []
    current = releases[0]
    for release in releases:
        if release.mandatory <= day:
            current = release
    newer = [r for r in releases if r.mandatory > current.mandatory and r.published <= day]
    return [current, *newer]
