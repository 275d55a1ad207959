"""Peppol Reporting documents, with no I/O: the Transaction Statistics Report (TSR 1.0) and the
End User Statistics Report (EUSR 1.1) for one calendar month, built from the exchanges the
gateway recorded as they happened (aggregated by the database; see ``store.month_*``).
"""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from lxml import etree

__all__ = [
    "EUSR_NS",
    "TSR_NS",
    "EndUserActivity",
    "EndUserExchange",
    "ExchangeCount",
    "build_eusr",
    "build_tsr",
    "end_user_activity",
    "month_period",
    "unified_end_user",
]

TSR_NS = "urn:fdc:peppol:transaction-statistics-report:1.0"
EUSR_NS = "urn:fdc:peppol:end-user-statistics-report:1.1"
TSR_CUSTOMIZATION = "urn:fdc:peppol.eu:edec:trns:transaction-statistics-reporting:1.0"
EUSR_CUSTOMIZATION = "urn:fdc:peppol.eu:edec:trns:end-user-statistics-report:1.1"
REPORTING_PROFILE = "urn:fdc:peppol.eu:edec:bis:reporting:1.0"
UNKNOWN_COUNTRY = "ZZ"


@dataclass(frozen=True)
class ExchangeCount:
    """How many exchanges share one combination of the TSR keys."""

    direction: str  # "in" or "out"
    other_sp: str
    document_type: str  # scheme::value
    process: str  # scheme::value
    transport_profile: str
    country_c1: str | None
    country_c4: str | None
    count: int


@dataclass(frozen=True)
class EndUserActivity:
    """One end user (a company) sent or received one document type in one process."""

    end_user: str
    direction: str
    document_type: str
    process: str
    country: str


@dataclass(frozen=True)
class EndUserExchange:
    """One counted exchange as the EUSR sees it: the company we served (None once deleted) and
    the participant identifier it used (the sender when sending, the receiver when receiving)."""

    company: str | None
    participant: str | None  # "scheme::value", e.g. "iso6523-actorid-upis::0208:0123456789"
    direction: str
    document_type: str
    process: str
    country: str


# Identifier schemes that name the same company under another scheme (Peppol's unification list
# for end-user counting): Belgian VAT "BE" + enterprise number → 0208, German VAT → GEBA 0246
# (without its sub-address suffixes), the removed Finnish 0037 → its successor OVT 0216.
def _be_vat(value: str) -> str:
    return "0208:" + (value[2:] if value.startswith("be") else value)


def _de_vat(value: str) -> str:
    return "0246:" + value


def _de_geba(value: str) -> str:
    return "0246:" + value.split("-", 1)[0].split(".", 1)[0]


def _fi_ovt(value: str) -> str:
    digits = value.replace("-", "")
    return "0216:" + (digits if digits.startswith("0037") and len(digits) >= 12 else "0037" + digits)


_UNIFY = {"9925": _be_vat, "9930": _de_vat, "0246": _de_geba, "0037": _fi_ovt}


def unified_end_user(participant: str) -> str:
    """The one name of an end user behind a participant identifier: case-insensitive, with the
    schemes of the unification list mapped onto their counterpart (``9925:BE0123456789`` and
    ``0208:0123456789`` are one end user; so are ``9930:DE…``/``0246:DE…`` and
    ``0037:…``/``0216:0037…``)."""
    _scheme, sep, value = participant.strip().lower().rpartition("::")
    identifier = value if sep else participant.strip().lower()
    icd, colon, local = identifier.partition(":")
    if colon and icd in _UNIFY:
        return _UNIFY[icd](local.strip())
    return identifier


def end_user_activity(exchanges: Iterable[EndUserExchange]) -> list[EndUserActivity]:
    """Name each end user once: exchanges of one company, and exchanges whose participant
    identifiers unify to the same end user, belong to one end user, even across companies (a
    company registered twice under two schemes is still one company)."""
    rows = list(exchanges)
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def nodes(row: EndUserExchange) -> list[str]:
        found = [f"company:{row.company}"] if row.company else []
        if row.participant:
            found.append(f"participant:{unified_end_user(row.participant)}")
        return found

    for row in rows:
        linked = nodes(row)
        for other in linked[1:]:
            a, b = find(linked[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    activity = {
        EndUserActivity(find(linked[0]), row.direction, row.document_type, row.process, row.country)
        for row in rows
        if (linked := nodes(row))
    }
    return sorted(activity, key=lambda a: (a.end_user, a.direction, a.document_type, a.process, a.country))


def month_period(month: str) -> tuple[date, date]:
    """``2026-10`` → (2026-10-01, 2026-10-31); ValueError for anything else."""
    year_text, sep, month_text = month.partition("-")
    if not sep or len(year_text) != 4 or len(month_text) != 2:
        raise ValueError(f"{month!r} is not YYYY-MM")
    year, number = int(year_text), int(month_text)
    if not 1 <= number <= 12:
        raise ValueError(f"{month!r} is not YYYY-MM")
    return date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])


def _e(parent: etree._Element, ns: str, local: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{local}", attrs)
    if text is not None:
        el.text = text
    return el


def _head(ns: str, root_name: str, customization: str, start: date, end: date, reporter: str) -> etree._Element:
    root = etree.Element(f"{{{ns}}}{root_name}", nsmap={None: ns})
    _e(root, ns, "CustomizationID", customization)
    _e(root, ns, "ProfileID", REPORTING_PROFILE)
    header = _e(root, ns, "Header")
    period = _e(header, ns, "ReportPeriod")
    _e(period, ns, "StartDate", start.isoformat())
    _e(period, ns, "EndDate", end.isoformat())
    _e(header, ns, "ReporterID", reporter, schemeID="CertSubjectCN")
    return root


def _id(kind: str, identifier: str) -> tuple[str, str, str]:
    scheme, sep, value = identifier.partition("::")
    if not sep:
        scheme, value = ("busdox-docid-qns" if kind == "DT" else "cenbii-procid-ubl"), identifier
    return kind, scheme, value


def _keys(parent: etree._Element, ns: str, keys: Iterable[tuple[str, str, str]]) -> None:
    for meta, scheme, value in keys:
        _e(parent, ns, "Key", value, metaSchemeID=meta, schemeID=scheme)


def build_tsr(counts: Iterable[ExchangeCount], *, start: date, end: date, reporter: str) -> bytes:
    """The TSR: totals, then subtotals per transport profile, per (other SP, document type,
    process), and per (SP, type, process, sender country, receiver country) for incoming
    exchanges only (a sender cannot know the receiver's country)."""
    ns = TSR_NS
    root = _head(ns, "TransactionStatisticsReport", TSR_CUSTOMIZATION, start, end, reporter)
    per_tp: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    per_sp: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    per_cc: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for row in counts:
        total[row.direction] += row.count
        per_tp[(row.transport_profile,)][row.direction] += row.count
        per_sp[(row.other_sp, row.document_type, row.process)][row.direction] += row.count
        if row.direction == "in":
            key = (
                row.other_sp, row.document_type, row.process,
                row.country_c1 or UNKNOWN_COUNTRY, row.country_c4 or UNKNOWN_COUNTRY,
            )  # fmt: skip
            per_cc[key]["in"] += row.count
    totals = _e(root, ns, "Total")
    _e(totals, ns, "Incoming", str(total["in"]))
    _e(totals, ns, "Outgoing", str(total["out"]))

    def subtotal(kind: str, keys: list[tuple[str, str, str]], counter: Counter[str]) -> None:
        el = _e(root, ns, "Subtotal", type=kind)
        _keys(el, ns, keys)
        _e(el, ns, "Incoming", str(counter["in"]))
        _e(el, ns, "Outgoing", str(counter["out"]))

    for (tp,), counter in sorted(per_tp.items()):
        subtotal("PerTP", [("TP", "Peppol", tp)], counter)
    for (sp, dt, pr), counter in sorted(per_sp.items()):
        subtotal("PerSP-DT-PR", [("SP", "CertSubjectCN", sp), _id("DT", dt), _id("PR", pr)], counter)
    for (sp, dt, pr, c1, c4), counter in sorted(per_cc.items()):
        keys = [
            ("SP", "CertSubjectCN", sp), _id("DT", dt), _id("PR", pr),
            ("CC", "SenderCountry", c1), ("CC", "ReceiverCountry", c4),
        ]  # fmt: skip
        subtotal("PerSP-DT-PR-CC", keys, counter)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def build_eusr(activity: Iterable[EndUserActivity], *, start: date, end: date, reporter: str) -> bytes:
    """The EUSR: distinct active end users (not messages) sending, receiving, and either, in
    total and per (document type, process), (type, process, country), (type, country), country.
    A subset with nobody in it is left out."""
    ns = EUSR_NS
    root = _head(ns, "EndUserStatisticsReport", EUSR_CUSTOMIZATION, start, end, reporter)
    full: dict[str, set[str]] = {"out": set(), "in": set()}
    subsets: dict[tuple[str, tuple[str, ...]], dict[str, set[str]]] = defaultdict(lambda: {"out": set(), "in": set()})
    for row in activity:
        full[row.direction].add(row.end_user)
        entries: tuple[tuple[str, tuple[str, ...]], ...] = (
            ("PerDT-PR", (row.document_type, row.process)),
            ("PerDT-PR-EUC", (row.document_type, row.process, row.country)),
            ("PerDT-EUC", (row.document_type, row.country)),
            ("PerEUC", (row.country,)),
        )
        for kind, key in entries:
            subsets[(kind, key)][row.direction].add(row.end_user)

    def counts(el: etree._Element, users: dict[str, set[str]]) -> None:
        _e(el, ns, "SendingEndUsers", str(len(users["out"])))
        _e(el, ns, "ReceivingEndUsers", str(len(users["in"])))
        _e(el, ns, "SendingOrReceivingEndUsers", str(len(users["out"] | users["in"])))

    counts(_e(root, ns, "FullSet"), full)
    order = {"PerDT-PR": 0, "PerDT-PR-EUC": 1, "PerDT-EUC": 2, "PerEUC": 3}
    for (kind, key), users in sorted(subsets.items(), key=lambda item: (order[item[0][0]], item[0][1])):
        if not users["out"] | users["in"]:
            continue
        el = _e(root, ns, "Subset", type=kind)
        if kind == "PerDT-PR":
            _keys(el, ns, [_id("DT", key[0]), _id("PR", key[1])])
        elif kind == "PerDT-PR-EUC":
            _keys(el, ns, [_id("DT", key[0]), _id("PR", key[1]), ("CC", "EndUserCountry", key[2])])
        elif kind == "PerDT-EUC":
            _keys(el, ns, [_id("DT", key[0]), ("CC", "EndUserCountry", key[1])])
        else:
            _keys(el, ns, [("CC", "EndUserCountry", key[0])])
        counts(el, users)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
