"""Typed Peppol identifiers: participant, document type and process.

Each has a scheme and a value, parses from and formats to the ``scheme::value`` URI form, and
knows its URL-path encoding. Participant values are case-insensitive (compared and hashed in
lower case, displayed as given); document type and process values are case-sensitive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, unquote

from smp._schemes import ICD_SCHEMES, check_local_id, scheme_problem

__all__ = [
    "DOCTYPE_SCHEMES",
    "PARTICIPANT_SCHEME",
    "PROCESS_SCHEME",
    "DocumentTypeId",
    "IdentifierError",
    "ParticipantId",
    "ProcessId",
]

PARTICIPANT_SCHEME = "iso6523-actorid-upis"
DOCTYPE_SCHEMES = ("busdox-docid-qns", "peppol-doctype-wildcard")
PROCESS_SCHEME = "cenbii-procid-ubl"

_PARTICIPANT_VALUE = re.compile(r"^([0-9]{4}):([A-Za-z0-9\-._~]{1,130})$")
_INVARIANT = re.compile(r"^[\x21-\x7e\xa1-\xff]+$")  # printable, no whitespace


class IdentifierError(ValueError):
    """An identifier breaks a rule; ``rule`` names it and ``field`` says which identifier."""

    def __init__(self, field: str, rule: str, value: str) -> None:
        super().__init__(f"{field} {value!r}: {rule}")
        self.field = field
        self.rule = rule
        self.value = value


def _split(text: str, field: str) -> tuple[str, str]:
    scheme, sep, value = text.partition("::")
    if not sep:
        raise IdentifierError(field, "expected the form scheme::value", text)
    return scheme, value


@dataclass(frozen=True)
class ParticipantId:
    """A participant (``iso6523-actorid-upis::0192:991825827``)."""

    value: str
    scheme: str = PARTICIPANT_SCHEME

    @classmethod
    def parse(cls, text: str, *, strict: bool = False, today: date | None = None) -> ParticipantId:
        """Parse ``scheme::ICD:id`` or bare ``ICD:id``; validate the ICD's own rules.

        The ICD must be in the Peppol code list and not removed on ``today`` (default: the
        current UTC day)."""
        text = text.strip()
        if "::" in text:
            scheme, value = _split(text, "participant")
        else:
            scheme, value = PARTICIPANT_SCHEME, text
        return cls.of(scheme, value, strict=strict, today=today)

    @classmethod
    def of(cls, scheme: str, value: str, *, strict: bool = False, today: date | None = None) -> ParticipantId:
        if scheme != PARTICIPANT_SCHEME:
            raise IdentifierError("participant", f"scheme must be {PARTICIPANT_SCHEME} (case-sensitive)", scheme)
        match = _PARTICIPANT_VALUE.match(value)
        if not match:
            raise IdentifierError(
                "participant",
                "expected ICD:id with a 4-digit ICD and 1-130 characters of [A-Za-z0-9-._~]",
                value,
            )
        icd, local = match.groups()
        refused = scheme_problem(icd, today)
        if refused:
            raise IdentifierError("participant", refused, value)
        problem = check_local_id(icd, local, strict)
        if problem:
            raise IdentifierError("participant", f"{icd} ({ICD_SCHEMES[icd].scheme_id}) {problem}", value)
        return cls(value=value, scheme=scheme)

    @property
    def icd(self) -> str:
        return self.value.split(":", 1)[0]

    @property
    def local_id(self) -> str:
        return self.value.split(":", 1)[1]

    @property
    def key(self) -> str:
        """Lower-cased value: for storage keys, comparison and DNS hashing."""
        return self.value.lower()

    @property
    def uri(self) -> str:
        return f"{self.scheme}::{self.value}"

    @property
    def url_segment(self) -> str:
        return quote(self.uri, safe="")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParticipantId):
            return NotImplemented
        return self.scheme == other.scheme and self.key == other.key

    def __hash__(self) -> int:
        return hash((self.scheme, self.key))

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True)
class DocumentTypeId:
    """A document type (``busdox-docid-qns::<root ns>::<root>##<customization>::<version>``)."""

    value: str
    scheme: str = "busdox-docid-qns"

    @classmethod
    def parse(cls, text: str, *, registration: bool = False) -> DocumentTypeId:
        text = text.strip()
        if text.startswith(DOCTYPE_SCHEMES) and "::" in text:
            scheme, value = _split(text, "document type")
        else:
            scheme, value = "busdox-docid-qns", text
        return cls.of(scheme, value, registration=registration)

    @classmethod
    def of(cls, scheme: str, value: str, *, registration: bool = False) -> DocumentTypeId:
        """``registration=True`` allows the trailing ``*`` of a wildcard SMP registration."""
        if scheme not in DOCTYPE_SCHEMES:
            raise IdentifierError("document type", f"scheme must be one of {DOCTYPE_SCHEMES}", scheme)
        if not value or len(value) > 500 or not _INVARIANT.match(value):
            raise IdentifierError("document type", "1-500 printable characters without whitespace", value)
        if "##" not in value or "::" not in value.split("##", 1)[1]:
            raise IdentifierError("document type", "expected <namespace>::<root>##<customization>::<version>", value)
        if "*" in value:
            if scheme != "peppol-doctype-wildcard" or not registration:
                raise IdentifierError("document type", "'*' only appears in wildcard SMP registrations", value)
            customization = value.split("##", 1)[1].rsplit("::", 1)[0]
            if value.count("*") > 1 or not customization.endswith("*") or customization.endswith("@*"):
                raise IdentifierError("document type", "'*' must end the customization id", value)
        return cls(value=value, scheme=scheme)

    @property
    def customization_id(self) -> str:
        return self.value.split("##", 1)[1].rsplit("::", 1)[0]

    @property
    def root_namespace(self) -> str:
        return self.value.split("##", 1)[0].rsplit("::", 1)[0]

    @property
    def root_element(self) -> str:
        return self.value.split("##", 1)[0].rsplit("::", 1)[1]

    @property
    def version(self) -> str:
        return self.value.rsplit("::", 1)[1]

    @property
    def uri(self) -> str:
        return f"{self.scheme}::{self.value}"

    @property
    def url_segment(self) -> str:
        return quote(self.uri, safe="")

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True)
class ProcessId:
    """A process (``cenbii-procid-ubl::urn:fdc:peppol.eu:2017:poacc:billing:01:1.0``)."""

    value: str
    scheme: str = PROCESS_SCHEME

    @classmethod
    def parse(cls, text: str) -> ProcessId:
        text = text.strip()
        if text.startswith(PROCESS_SCHEME + "::"):
            scheme, value = _split(text, "process")
        else:
            scheme, value = PROCESS_SCHEME, text
        return cls.of(scheme, value)

    @classmethod
    def of(cls, scheme: str, value: str) -> ProcessId:
        if scheme != PROCESS_SCHEME:
            raise IdentifierError("process", f"scheme must be {PROCESS_SCHEME}", scheme)
        if not value or len(value) > 200 or not _INVARIANT.match(value):
            raise IdentifierError("process", "1-200 printable characters without whitespace", value)
        return cls(value=value, scheme=scheme)

    @property
    def uri(self) -> str:
        return f"{self.scheme}::{self.value}"

    def __str__(self) -> str:
        return self.uri


def decode_segment(segment: str) -> str:
    """Percent-decode one URL path segment (upper- or lower-case hex)."""
    return unquote(segment)
