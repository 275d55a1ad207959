"""The document types and processes the gateway handles (Peppol code list v9.7, all active),
grouped into the receiving profiles companies register for."""

from __future__ import annotations

from dataclasses import dataclass

from smp._identifiers import DocumentTypeId, ProcessId

__all__ = ["DOCUMENT_TYPES", "EUSR", "MLS", "PROFILES", "TSR", "DocumentType", "find_document_type", "profile_services"]

_UBL = "urn:oasis:names:specification:ubl:schema:xsd:"
_BILLING = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
_EHF = "urn:fdc:anskaffelser.no:2019:ehf"
_EHF_POSTAWARD = f"{_EHF}:postaward"
_BILLING_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


@dataclass(frozen=True)
class DocumentType:
    """A document type with the processes it may travel in."""

    name: str
    document_type: DocumentTypeId
    processes: tuple[ProcessId, ...]

    @property
    def process(self) -> ProcessId:
        """The usual process (the first listed)."""
        return self.processes[0]


def _dt(name: str, root: str, customization: str, version: str, *processes: str) -> DocumentType:
    local = root.split("-")[0]
    value = f"{_UBL}{root}::{local}##{customization}::{version}"
    return DocumentType(name, DocumentTypeId(value), tuple(ProcessId(p) for p in processes))


DOCUMENT_TYPES: tuple[DocumentType, ...] = (
    _dt("BIS3_INVOICE", "Invoice-2", _BILLING, "2.1", _BILLING_PROCESS),
    _dt("BIS3_CREDIT_NOTE", "CreditNote-2", _BILLING, "2.1", _BILLING_PROCESS),
    _dt(
        "BIS3_ORDER", "Order-2", "urn:fdc:peppol.eu:poacc:trns:order:3", "2.1",
        "urn:fdc:peppol.eu:poacc:bis:ordering:3", "urn:fdc:peppol.eu:poacc:bis:order_only:3",
        "urn:fdc:peppol.eu:poacc:bis:advanced_ordering:3",
    ),
    _dt(
        "BIS3_ORDER_RESPONSE", "OrderResponse-2", "urn:fdc:peppol.eu:poacc:trns:order_response:3",
        "2.1", "urn:fdc:peppol.eu:poacc:bis:ordering:3",
    ),
    _dt(
        "BIS3_CATALOGUE", "Catalogue-2", "urn:fdc:peppol.eu:poacc:trns:catalogue:3", "2.1",
        "urn:fdc:peppol.eu:poacc:bis:catalogue_only:3",
        "urn:fdc:peppol.eu:poacc:bis:catalogue_wo_response:3",
    ),
    _dt(
        "BIS3_CATALOGUE_RESPONSE", "ApplicationResponse-2",
        "urn:fdc:peppol.eu:poacc:trns:catalogue_response:3", "2.1",
        "urn:fdc:peppol.eu:poacc:bis:catalogue_only:3",
    ),
    _dt(
        "BIS3_DESPATCH_ADVICE", "DespatchAdvice-2",
        "urn:fdc:peppol.eu:poacc:trns:despatch_advice:3", "2.1",
        "urn:fdc:peppol.eu:poacc:bis:despatch_advice:3",
    ),
    _dt(
        "BIS3_INVOICE_RESPONSE", "ApplicationResponse-2",
        "urn:fdc:peppol.eu:poacc:trns:invoice_response:3", "2.1",
        "urn:fdc:peppol.eu:poacc:bis:invoice_response:3",
    ),
    _dt(
        "BIS3_MLR", "ApplicationResponse-2", "urn:fdc:peppol.eu:poacc:trns:mlr:3", "2.1",
        "urn:fdc:peppol.eu:poacc:bis:mlr:3",
    ),
    _dt(
        "EHF3_CATALOGUE", "Catalogue-2",
        f"urn:fdc:peppol.eu:poacc:trns:catalogue:3:extended:{_EHF}:spec:3.0", "2.2",
        f"{_EHF_POSTAWARD}:g3:01:1.0",
    ),
    _dt(
        "EHF3_CATALOGUE_RESPONSE", "ApplicationResponse-2",
        f"urn:fdc:peppol.eu:poacc:trns:catalogue_response:3:extended:{_EHF}:spec:3.0", "2.2",
        f"{_EHF_POSTAWARD}:g3:01:1.0",
    ),
    _dt(
        "EHF3_ORDER", "Order-2", f"urn:fdc:peppol.eu:poacc:trns:order:3:extended:{_EHF}:spec:3.0",
        "2.2", f"{_EHF_POSTAWARD}:g3:09:1.0", f"{_EHF_POSTAWARD}:g3:02:1.0",
    ),
    _dt(
        "EHF3_ORDER_RESPONSE", "OrderResponse-2",
        f"urn:fdc:peppol.eu:poacc:trns:order_response:3:extended:{_EHF}:spec:3.0", "2.2",
        f"{_EHF_POSTAWARD}:g3:09:1.0", f"{_EHF_POSTAWARD}:g3:02:1.0",
    ),
    _dt(
        "EHF3_DESPATCH_ADVICE", "DespatchAdvice-2",
        f"urn:fdc:peppol.eu:poacc:trns:despatch_advice:3:extended:{_EHF}:spec:3.0", "2.2",
        f"{_EHF_POSTAWARD}:g3:05:1.0",
    ),
)  # fmt: skip

# Peppol network documents: the Message Level Status between service providers, and the two
# monthly reports to OpenPeppol (their roots are not UBL).
MLS = DocumentType(
    "PEPPOL_MLS",
    DocumentTypeId(f"{_UBL}ApplicationResponse-2::ApplicationResponse##urn:peppol:edec:mls:1.0::2.1"),
    (ProcessId("urn:peppol:edec:mls"),),
)
TSR = DocumentType(
    "PEPPOL_TSR",
    DocumentTypeId(
        "urn:fdc:peppol:transaction-statistics-report:1.0::TransactionStatisticsReport"
        "##urn:fdc:peppol.eu:edec:trns:transaction-statistics-reporting:1.0::1.0"
    ),
    (ProcessId("urn:fdc:peppol.eu:edec:bis:reporting:1.0"),),
)
EUSR = DocumentType(
    "PEPPOL_EUSR",
    DocumentTypeId(
        "urn:fdc:peppol:end-user-statistics-report:1.1::EndUserStatisticsReport"
        "##urn:fdc:peppol.eu:edec:trns:end-user-statistics-report:1.1::1.1"
    ),
    (ProcessId("urn:fdc:peppol.eu:edec:bis:reporting:1.0"),),
)
DOCUMENT_TYPES += (MLS, TSR, EUSR)

_BY_NAME = {d.name: d for d in DOCUMENT_TYPES}

# Receiving profiles: (profile, version) -> document type names.
PROFILES: dict[tuple[str, str], tuple[str, ...]] = {
    ("INVOICE_AND_CREDIT_NOTE", "PEPPOLBIS30"): ("BIS3_INVOICE", "BIS3_CREDIT_NOTE"),
    ("INVOICE_AND_CREDIT_NOTE", "EHF30"): ("BIS3_INVOICE", "BIS3_CREDIT_NOTE"),
    ("ORDER", "PEPPOLBIS30"): ("BIS3_ORDER",),
    ("ORDER", "EHF30"): ("EHF3_ORDER",),
    ("ORDER_RESPONSE", "PEPPOLBIS30"): ("BIS3_ORDER_RESPONSE",),
    ("ORDER_RESPONSE", "EHF30"): ("EHF3_ORDER_RESPONSE",),
    ("CATALOGUE", "PEPPOLBIS30"): ("BIS3_CATALOGUE",),
    ("CATALOGUE", "EHF30"): ("EHF3_CATALOGUE",),
    ("CATALOGUE_RESPONSE", "PEPPOLBIS30"): ("BIS3_CATALOGUE_RESPONSE",),
    ("CATALOGUE_RESPONSE", "EHF30"): ("EHF3_CATALOGUE_RESPONSE",),
    ("DESPATCH_ADVICE", "PEPPOLBIS30"): ("BIS3_DESPATCH_ADVICE",),
    ("DESPATCH_ADVICE", "EHF30"): ("EHF3_DESPATCH_ADVICE",),
    ("INVOICE_RESPONSE", "PEPPOLBIS30"): ("BIS3_INVOICE_RESPONSE",),
    ("MESSAGE_LEVEL_RESPONSE", "PEPPOLBIS30"): ("BIS3_MLR",),
    # what a service provider's SPID (0242) receives, and what OpenPeppol's reporting
    # participant receives
    ("MESSAGE_LEVEL_STATUS", "PEPPOLBIS30"): ("PEPPOL_MLS",),
    ("PEPPOL_REPORTING", "PEPPOLBIS30"): ("PEPPOL_TSR", "PEPPOL_EUSR"),
}


def profile_services(profile: str, version: str = "PEPPOLBIS30") -> tuple[DocumentType, ...]:
    """The document types behind a receiving profile; KeyError names an unknown one."""
    try:
        names = PROFILES[(profile, version)]
    except KeyError:
        raise KeyError(f"unknown profile {profile!r} version {version!r}") from None
    return tuple(_BY_NAME[n] for n in names)


def find_document_type(document_type: DocumentTypeId) -> DocumentType | None:
    for entry in DOCUMENT_TYPES:
        if entry.document_type == document_type:
            return entry
    return None
