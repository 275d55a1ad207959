"""Per-ICD rules for participant identifier values (``ICD:local-id``).

The table holds the schemes the gateway knows (Peppol code list v9.7 snapshot): their state and,
where the scheme defines one, a format and check-digit rule. Other well-formed ICDs are accepted
with the generic Peppol syntax rules only.

Each check returns ``None`` when the local id is fine, or the name of the rule it breaks, so the
error can say exactly what failed ("check digit", "length", ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ICD_SCHEMES", "IcdScheme", "check_local_id"]

Check = Callable[[str, bool], str | None]


@dataclass(frozen=True)
class IcdScheme:
    icd: str
    name: str
    country: str
    state: str  # "active", "deprecated" or "removed"
    check: Check | None = None
    hint: str = ""


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


ICD_SCHEMES: dict[str, IcdScheme] = {
    s.icd: s
    for s in (
        IcdScheme("0192", "NO:ORG", "NO", "active", _no_0192),
        IcdScheme("0007", "SE:ORGNR", "SE", "active", _se_0007),
        IcdScheme("0216", "FI:OVT2", "FI", "active", _fi_0216),
        IcdScheme("0037", "FI:OVT", "FI", "removed", hint="use 0216 (0037 + business id)"),
        IcdScheme("0184", "DK:DIGST", "DK", "active", _dk_0184),
        IcdScheme("0198", "DK:ERST", "DK", "active"),
        IcdScheme("0106", "NL:KVK", "NL", "active", _nl_0106),
        IcdScheme("0190", "NL:OINO", "NL", "active"),
        IcdScheme("9944", "NL:VAT", "NL", "active", _nl_9944),
        IcdScheme("9954", "NL:OIN", "NL", "removed", hint="use 0190"),
        IcdScheme("0088", "GLN", "", "active", _gln_0088),
        IcdScheme("0208", "BE:EN", "BE", "active", _be_0208),
        IcdScheme("9925", "BE:VAT", "BE", "active", _be_9925),
        IcdScheme("0193", "UBLBE", "BE", "deprecated"),
        IcdScheme("9930", "DE:VAT", "DE", "active"),
        IcdScheme("0246", "DE:GEBA", "DE", "active"),
        IcdScheme("0204", "DE:LWID", "DE", "active"),
        IcdScheme("0002", "FR:SIRENE", "FR", "active"),
        IcdScheme("0009", "FR:SIRET", "FR", "active"),
        IcdScheme("0225", "FR:CTC", "FR", "active"),
        IcdScheme("0151", "AU:ABN", "AU", "active"),
        IcdScheme("0242", "SPIS", "", "active", _spis_0242),
        IcdScheme("9915", "AT:GOV", "AT", "active"),
        IcdScheme("9908", "NO:ORGNR", "NO", "removed", hint="use 0192"),
        IcdScheme("9909", "NO:VAT", "NO", "deprecated"),
    )
}

# Codes people write by mistake, with the code they meant.
MISTAKEN_ICDS = {"0182": "0184 (DK:DIGST, the Danish CVR number)"}


def check_local_id(icd: str, local_id: str, strict: bool = False) -> str | None:
    """The rule ``local_id`` breaks for scheme ``icd``, or None."""
    scheme = ICD_SCHEMES.get(icd)
    if scheme is None or scheme.check is None:
        return None
    return scheme.check(local_id, strict)
