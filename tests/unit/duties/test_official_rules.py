"""The official rule sets beyond invoices: the release table, Message Level Status and Response
checked against the files other implementations test with (``../shared/corpora/mls``), and the
Peppol Reporting rules on cases built from them."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from gateway.duties.report_documents import EndUserActivity, ExchangeCount, build_eusr, build_tsr
from gateway.duties.rule_versions import Release, in_force, load_table, rules_dir
from gateway.duties.validation import validate_document, validate_report
from tests.support.paths import ROOT

CORPUS = ROOT.parent / "shared" / "corpora" / "mls"
# The corpus follows the MLS rules 1.0.1 (2025-12-15: the SPIS regular expression applied
# case-insensitively, the schemeID must be 0242); the jars on Maven Central carry 1.0.0, which
# differs on exactly these files. When a newer rule jar brings 1.0.1, this list must go.
MLS_1_0_0_DIFFERS = {"MessageLevelStatus_Example_AB3.xml", "mls-11d.xml", "mls-16d.xml"}
INVOICE = "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##x::2.1"
BILLING = "cenbii-procid-ubl::urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
AS4 = "peppol-transport-as4-v2_0"
PERIOD = {"start": date(2026, 10, 1), "end": date(2026, 10, 31), "reporter": "POP000001"}


def _release(version: str, published: str, mandatory: str) -> Release:
    return Release("bis_billing", version, date.fromisoformat(published), date.fromisoformat(mandatory), "")


def test_the_release_in_force_and_the_transition_window() -> None:
    table = (
        _release("a", "2025-05-26", "2025-08-25"),
        _release("b", "2025-11-24", "2026-02-23"),
        _release("c", "2026-05-20", "2026-08-17"),
    )
    versions = {day: [r.version for r in in_force(table, date.fromisoformat(day))] for day in (
        "2024-01-01", "2025-12-01", "2026-02-23", "2026-05-19", "2026-05-20", "2026-08-16", "2026-08-17",
    )}  # fmt: skip
    assert versions == {
        "2024-01-01": ["a"],  # before them all: the oldest
        "2025-12-01": ["a", "b"],
        "2026-02-23": ["b"],
        "2026-05-19": ["b"],
        "2026-05-20": ["b", "c"],
        "2026-08-16": ["b", "c"],
        "2026-08-17": ["c"],
    }


def test_the_shipped_table_names_files_that_were_fetched() -> None:
    table = load_table()
    assert [r.version for r in table.releases["bis_billing"]] == ["3.0.19", "3.0.20", "3.0.21"]
    assert table.releases["bis_billing"][-1].mandatory == date(2026, 8, 17)
    for releases in table.releases.values():
        for release in releases:
            assert (rules_dir() / release.path).exists(), release
    assert (rules_dir() / "SOURCE").read_text().startswith("jar com.helger.phive.rules:phive-rules-peppol:")


def _corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the MLS corpus is read from {CORPUS}, which is absent here")
    return CORPUS


def test_every_valid_mls_and_the_mlr_pass_the_official_rules() -> None:
    corpus = _corpus()
    files = sorted((corpus / "good").glob("*.xml"))
    assert len(files) == 8
    for path in files:
        result = validate_document(path.read_bytes())
        assert result.layers_run == ["xml", "schema", "mls"], path.name
        assert result.artefacts["peppol-mls-1"].startswith("1.0.0: ")
        if path.name in MLS_1_0_0_DIFFERS:
            assert not result.valid, f"{path.name} passes: the shipped MLS rules changed, update the list"
            continue
        assert result.valid, (path.name, result.as_json()["errors"])
    mlr = validate_document((corpus / "MessageLevelResponse_Example.xml").read_bytes())
    assert mlr.valid and mlr.layers_run == ["xml", "schema", "mlr"], mlr.as_json()["errors"]
    assert "PEPPOLBIS-T71.xslt" in mlr.artefacts["peppol-bis-mlr-3"]


def test_every_invalid_mls_fails_naming_the_rule_it_breaks() -> None:
    corpus = _corpus()
    files = [p for p in sorted((corpus / "bad").glob("*.xml")) if re.fullmatch(r"mls-\d\d[a-z]\.xml", p.name)]
    assert len(files) == 66  # and the template they were made from, which is valid
    assert validate_document((corpus / "bad" / "mls-template.xml").read_bytes()).valid
    for path in files:
        rule = f"SCH-MLS-{path.name[4:6]}"
        result = validate_document(path.read_bytes())
        broken = {f.rule_id for f in result.findings if f.flag == "fatal"}
        if path.name in MLS_1_0_0_DIFFERS:
            assert result.valid, f"{path.name} fails: the shipped MLS rules changed, update the list"
            continue
        assert result.validated and not result.valid and rule in broken, (path.name, broken)


def test_an_mlr_with_an_unknown_response_code_breaks_its_code_list() -> None:
    mlr = (_corpus() / "MessageLevelResponse_Example.xml").read_bytes()
    bad = re.sub(
        rb"<cbc:ResponseCode>[A-Z]+</cbc:ResponseCode>", b"<cbc:ResponseCode>XX</cbc:ResponseCode>", mlr, count=1
    )
    assert bad != mlr
    result = validate_document(bad)
    assert not result.valid and any(f.layer == "mlr" and f.flag == "fatal" for f in result.findings)


# -- reporting: no examples ship in the rule jars, so the cases are built from the rules ---------


def _tsr(count: int = 3) -> bytes:
    return build_tsr([ExchangeCount("in", "POP000002", INVOICE, BILLING, AS4, "SE", "NO", count)], **PERIOD)  # type: ignore[arg-type]


def _eusr() -> bytes:
    activity = [EndUserActivity("company-a", "out", INVOICE, BILLING, "NO")]
    return build_eusr(activity, **PERIOD)  # type: ignore[arg-type]


def test_reports_pass_the_release_of_their_period_and_name_it() -> None:
    for report, layer in ((_tsr(), "peppol-tsr"), (_eusr(), "peppol-eusr")):
        result = validate_document(report)  # the same entry as any document
        assert result.valid, result.as_json()["errors"]
        assert result.layers_run == ["xml", layer]
        assert result.artefacts[layer].startswith("1.0.5: " if layer == "peppol-tsr" else "1.1.5: ")
        assert result.artefacts["release"].endswith("in force on 2026-10-31")


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ((b"<Total><Incoming>3</Incoming>", b"<Total><Incoming>4</Incoming>"), "SCH-TSR-04"),
        ((b'<ReporterID schemeID="CertSubjectCN">POP000001', b'<ReporterID schemeID="CertSubjectCN">XYZ'), None),
    ],
)
def test_a_broken_tsr_fails_with_the_rule_id(change: tuple[bytes, bytes], rule: str | None) -> None:
    report = _tsr()
    bad = report.replace(*change)
    if bad == report:
        pytest.fail(f"the TSR no longer holds {change[0]!r}")
    result = validate_report(bad)
    assert not result.valid
    broken = {f.rule_id for f in result.findings if f.flag == "fatal"}
    assert (rule in broken) if rule else any(r.startswith("SCH-TSR-") for r in broken), broken


def test_a_broken_eusr_fails_with_the_rule_id() -> None:
    report = _eusr()
    bad = report.replace(b"<SendingEndUsers>1</SendingEndUsers>", b"<SendingEndUsers>2</SendingEndUsers>", 1)
    assert bad != report
    result = validate_report(bad)
    broken = {f.rule_id for f in result.findings if f.flag == "fatal"}
    assert not result.valid and any(r.startswith("SCH-EUSR-") for r in broken), broken
