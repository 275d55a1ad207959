"""The official Peppol Reporting examples (OpenPEPPOL's edec-reporting sources: good examples and
one bad example per rule, ``bad-examples/tsr-NN-k.xml`` breaking SCH-TSR-NN) checked by our
reporting validation, under the oldest and the newest release we ship.

The examples are not published in any package this project can depend on; point
``EDEC_REPORTING_DIR`` at a checkout of https://github.com/OpenPEPPOL/edec-reporting to run
these tests (without it they are skipped, saying so)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from gateway.duties.validation import validate_report

SOURCES = Path(os.environ.get("EDEC_REPORTING_DIR", "/nonexistent")) / "src"
FOLDERS = ("eusr/trn-end_user_statistics", "tsr/trn-transaction_statistics")
# eusr-26-1 still shows an older SCH-EUSR-26 ("two Key elements with the meta scheme ID 'CC'");
# the released rule asks for one CC key, which that file has. It stays invalid (SCH-EUSR-23 and
# SCH-EUSR-27: the country key is missing), just not for the rule it is named after.
STALE = {"eusr-26-1.xml": {"SCH-EUSR-23", "SCH-EUSR-27"}}

pytestmark = pytest.mark.skipif(
    not SOURCES.is_dir(),
    reason="EDEC_REPORTING_DIR is not set to a checkout of github.com/OpenPEPPOL/edec-reporting",
)


def _files(kind: str) -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (SOURCES / folder / kind).glob("*.xml")) if SOURCES.is_dir() else []


def _five_years_later(data: bytes) -> bytes:
    """The same report for a period under the newest release (the examples are dated 2022-2023,
    so they pick the oldest release shipped)."""
    return re.sub(rb"<(StartDate|EndDate)>(\d{4})", lambda m: b"<%s>%d" % (m[1], int(m[2]) + 5), data)


RELEASES = [pytest.param(lambda d: d, id="oldest"), pytest.param(_five_years_later, id="newest")]


def test_the_examples_are_there() -> None:
    assert len(_files("example")) >= 10 and len(_files("bad-examples")) >= 100


@pytest.mark.parametrize("dated", RELEASES)
@pytest.mark.parametrize("path", _files("example"), ids=lambda p: p.name)
def test_every_good_example_passes(path: Path, dated: object) -> None:
    result = validate_report(dated(path.read_bytes()))  # type: ignore[operator]
    assert result.validated and result.valid, result.as_json()["errors"]


@pytest.mark.parametrize("dated", RELEASES)
@pytest.mark.parametrize("path", _files("bad-examples"), ids=lambda p: p.name)
def test_every_bad_example_fails_naming_its_rule(path: Path, dated: object) -> None:
    match = re.match(r"(eusr|tsr)-(\d+)", path.name)
    assert match, path.name
    result = validate_report(dated(path.read_bytes()))  # type: ignore[operator]
    broken = {f.rule_id for f in result.findings}
    expected = STALE.get(path.name, {f"SCH-{match[1].upper()}-{match[2]}"})
    assert result.validated and not result.valid and expected <= broken, broken
