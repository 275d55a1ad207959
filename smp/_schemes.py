"""The participant identifier schemes (ICDs) of the Peppol code lists, with their rules.

The schemes, their states and dates come from one data file per code-list version
(``data/participant-schemes-v<version>.json``, a transcription of OpenPeppol's eDEC code list);
:data:`CODE_LIST_VERSION` names the one in force. Moving to the next version is adding its file
and changing that constant. A scheme is refused once it is removed: when the list says
``removed``, and also from its ``removal_date`` on, which a deprecated entry announces ahead.
"Today" is always a parameter, so the decision can be tested on any day.

Each check returns ``None`` when the local id is fine, or the name of the rule it breaks, so the
error can say exactly what failed ("check digit", "format", ...).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources

__all__ = [
    "CODE_LIST_VERSION",
    "ICD_SCHEMES",
    "IcdScheme",
    "SchemeState",
    "check_local_id",
    "registration_problem",
    "scheme_problem",
    "utc_today",
]

CODE_LIST_VERSION = "9.7"

Check = Callable[[str, bool], str | None]


class SchemeState(enum.StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"  # still valid; no new registrations should use it
    REMOVED = "removed"  # must not be used at all


@dataclass(frozen=True)
class IcdScheme:
    """One code-list entry. Releases are code-list versions (the list dates only removals)."""

    icd: str
    scheme_id: str  # e.g. "NO:ORG"
    country: str
    name: str
    state: SchemeState
    since_release: str | None
    deprecated_in_release: str | None
    removal_date: date | None
    registrable: bool
    pattern: re.Pattern[str] | None = None
    check: Check | None = None
    successor: str | None = None

    def state_on(self, day: date) -> SchemeState:
        """The state on ``day``: a deprecated scheme becomes removed on its removal date."""
        if self.state is SchemeState.REMOVED or (self.removal_date is not None and day >= self.removal_date):
            return SchemeState.REMOVED
        return self.state


def _weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False))


def _no_0192(v: str, strict: bool) -> str | None:
    if not re.fullmatch(r"[0-9]{9}", v):
        return "format: a Norwegian organisation number has 9 digits"
    r = _weighted(v, (3, 2, 7, 6, 5, 4, 3, 2)) % 11
    check = 0 if r == 0 else 11 - r
    if check == 10 or check != int(v[8]):
        return "check digit: MOD11 (weights 3,2,7,6,5,4,3,2) does not match the 9th digit"
    return None


def _luhn_ok(v: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(v)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _se_0007(v: str, strict: bool) -> str | None:
    if not re.fullmatch(r"[0-9]{10}", v):
        return "format: a Swedish organisation number has 10 digits, without hyphen or century"
    if not _luhn_ok(v):
        return "check digit: the Luhn checksum fails"
    return None


def _fi_0216(v: str, strict: bool) -> str | None:
    m = re.fullmatch(r"0037([0-9]{8})([0-9A-Z]{0,5})", v)
    if not m:
        return "format: 0037 + 8-digit business ID + optional suffix of up to 5 [A-Z0-9]"
    y = m.group(1)
    r = _weighted(y, (7, 9, 10, 5, 8, 4, 2)) % 11
    if r == 1 or (0 if r == 0 else 11 - r) != int(y[7]):
        return "check digit: the business ID (Y-tunnus) MOD11 check fails"
    return None


def _dk_0184(v: str, strict: bool) -> str | None:
    if not re.fullmatch(r"[1-9][0-9]{7}", v):
        return "format: a Danish CVR number has 8 digits and does not start with 0"
    if strict and _weighted(v, (2, 7, 6, 5, 4, 3, 2, 1)) % 11 != 0:
        return "check digit: the national CVR MOD11 check fails (strict mode)"
    return None


def _nl_0106(v: str, strict: bool) -> str | None:
    if not re.fullmatch(r"[0-9]{8}", v):
        return "format: a Dutch KVK number has 8 digits"
    return None


def _nl_9944(v: str, strict: bool) -> str | None:
    upper = v.upper()
    m = re.fullmatch(r"NL([0-9]{9})B([0-9]{2})", upper)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        return "format: a Dutch VAT number is NL + 9 digits + B + 2 digits (not 00)"
    eleven = _weighted(m.group(1), (9, 8, 7, 6, 5, 4, 3, 2, -1)) % 11 == 0
    mod97 = int("".join(str(int(c, 36)) for c in upper)) % 97 == 1
    if not (eleven or mod97):
        return "check digit: neither the 11-test nor MOD 97-10 passes"
    return None


def _gln_0088(v: str, strict: bool) -> str | None:
    if not re.fullmatch(r"[0-9]{13}", v):
        return "format: a GLN has 13 digits"
    s = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(v[:-1])))
    if (10 - s % 10) % 10 != int(v[-1]):
        return "check digit: the GS1 mod 10 check fails"
    return None


def _be_0208(v: str, strict: bool) -> str | None:
    if not re.fullmatch(r"[01][0-9]{9}", v):
        return "format: a Belgian enterprise number has 10 digits starting with 0 or 1"
    if 97 - int(v[:8]) % 97 != int(v[8:]):
        return "check digit: 97 - (first 8 digits mod 97) must equal the last 2"
    return None


def _be_9925(v: str, strict: bool) -> str | None:
    if not v.upper().startswith("BE"):
        return "format: a Belgian VAT number is BE + the 10-digit enterprise number"
    return _be_0208(v[2:], strict)


def _spis_0242(v: str, strict: bool) -> str | None:
    if not re.fullmatch(r"[0-9]{6}(-[0-9A-Za-z_]{3,12}(\.[0-9A-Za-z\-._~]{3,24})?)?", v):
        return "format: a Peppol service provider id is 6 digits [-use-case[.suffix]]"
    return None


def _fr_0002(v: str, strict: bool) -> str | None:
    if not re.fullmatch(r"[0-9]{9}([0-9]{5})?", v):
        return "format: a SIREN has 9 digits (a SIRET 14)"
    if not _luhn_ok(v[:9]):
        return "check digit: the SIREN's Luhn checksum fails"
    return None


def _au_0151(v: str, strict: bool) -> str | None:
    if not re.fullmatch(r"[0-9]{11}", v):
        return "format: an Australian Business Number has 11 digits"
    digits = [int(d) for d in v]
    digits[0] -= 1  # the first digit is never 0: the check digits run from 10 to 99
    weights = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)
    if sum(d * w for d, w in zip(digits, weights, strict=True)) % 89:
        return "check digit: the ABN mod 89 check fails"
    return None


def _dk_0198(v: str, strict: bool) -> str | None:
    m = re.fullmatch(r"DK([0-9]{8})", v.upper())
    if not m:
        return "format: a Danish SE number is DK + 8 digits"
    if _weighted(m.group(1), (2, 7, 6, 5, 4, 3, 2, 1)) % 11:
        return "check digit: MOD11 (weights 2,7,6,5,4,3,2,1) fails"
    return None


def _lei_0199(v: str, strict: bool) -> str | None:
    upper = v.upper()
    if not re.fullmatch(r"[A-Z0-9]{18}[0-9]{2}", upper):
        return "format: a LEI has 18 letters or digits and 2 check digits"
    if int("".join(str(int(c, 36)) for c in upper)) % 97 != 1:
        return "check digit: ISO 7064 MOD 97-10 fails"
    return None


_CHECKS: dict[str, Check] = {
    "no-orgnr-mod11": _no_0192,
    "luhn": _se_0007,
    "fi-ovt2": _fi_0216,
    "dk-cvr": _dk_0184,
    "nl-kvk": _nl_0106,
    "nl-vat": _nl_9944,
    "gs1-mod10": _gln_0088,
    "be-mod97": _be_0208,
    "be-vat": _be_9925,
    "spis": _spis_0242,
    "fr-siren-luhn": _fr_0002,
    "au-abn-mod89": _au_0151,
    "dk-se-mod11": _dk_0198,
    "lei-mod97": _lei_0199,
}


def _load(version: str) -> dict[str, IcdScheme]:
    text = (resources.files("smp") / "data" / f"participant-schemes-v{version}.json").read_text("utf-8")
    document = json.loads(text)
    if document["version"] != version:
        raise ValueError(f"participant scheme file for {version} says version {document['version']}")
    schemes: dict[str, IcdScheme] = {}
    for entry in document["schemes"]:
        check = entry.get("check")
        schemes[entry["icd"]] = IcdScheme(
            icd=entry["icd"],
            scheme_id=entry["scheme_id"],
            country=entry["country"],
            name=entry["name"],
            state=SchemeState(entry["state"]),
            since_release=entry.get("since_release"),
            deprecated_in_release=entry.get("deprecated_in_release"),
            removal_date=date.fromisoformat(entry["removal_date"]) if entry.get("removal_date") else None,
            registrable=bool(entry.get("registrable", True)),
            pattern=re.compile(entry["pattern"], re.IGNORECASE) if entry.get("pattern") else None,
            check=_CHECKS[check] if check else None,
            successor=entry.get("successor"),
        )
    return schemes


ICD_SCHEMES: dict[str, IcdScheme] = _load(CODE_LIST_VERSION)

# Codes people write by mistake, with the code they meant.
MISTAKEN_ICDS = {"0182": "0184 (DK:DIGST, the Danish CVR number)"}


def utc_today() -> date:
    return datetime.now(UTC).date()


def scheme_problem(icd: str, today: date | None = None) -> str | None:
    """Why ``icd`` may not be used on ``today`` (default: the current UTC day), or None."""
    if icd in MISTAKEN_ICDS:
        return f"{icd} is not a Peppol scheme; did you mean {MISTAKEN_ICDS[icd]}?"
    scheme = ICD_SCHEMES.get(icd)
    if scheme is None:
        return f"unknown participant identifier scheme {icd} (not in the Peppol code lists v{CODE_LIST_VERSION})"
    day = today or utc_today()
    if scheme.state_on(day) is SchemeState.REMOVED:
        when = f" on {scheme.removal_date.isoformat()}" if scheme.removal_date else ""
        instead = f"; use {scheme.successor} ({ICD_SCHEMES[scheme.successor].scheme_id})" if scheme.successor else ""
        return f"{icd} was removed from the Peppol code lists{when}{instead}"
    return None


def registration_problem(icd: str, today: date | None = None) -> str | None:
    """Why a participant of scheme ``icd`` may not be registered in the SML on ``today``, or None."""
    problem = scheme_problem(icd, today)
    if problem is None and not ICD_SCHEMES[icd].registrable:
        problem = f"{icd} ({ICD_SCHEMES[icd].scheme_id}) may not be registered in the Peppol network"
    return problem


def check_local_id(icd: str, local_id: str, strict: bool = False) -> str | None:
    """The rule ``local_id`` breaks for scheme ``icd``, or None."""
    scheme = ICD_SCHEMES.get(icd)
    if scheme is None:
        return None
    if scheme.check is not None:
        problem = scheme.check(local_id, strict)
        if problem:
            return problem
    if scheme.pattern is not None and not scheme.pattern.fullmatch(local_id):
        return f"format: the code list's rule is {scheme.pattern.pattern}"
    return None
