"""The Peppol business message envelope (SBDH 2.0): wrap a business document, read one back.

Reading checks what a receiving access point must check (Peppol Envelope 2.0.1 and the 2.0.2
MLS keys) and fails with :class:`SbdhError`, whose ``code`` names the rule. Building and reading
take and give :class:`~gateway.documents.business.BusinessDocument`, so a document submitted to
the gateway is parsed once (:func:`read_submitted`) and every later step reuses that tree.
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

import as4
from as4._xml import parse_xml
from gateway.documents.business import BusinessDocument
from gateway.documents.errors import DocumentError

__all__ = [
    "SBDH_NS",
    "Envelope",
    "SbdhError",
    "build_sbd",
    "is_sbd",
    "read_envelope",
    "read_sbd",
    "read_submitted",
    "sbd_frame",
]

SBDH_NS = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
PARTICIPANT_SCHEME = "iso6523-actorid-upis"
_COUNTRY = re.compile(r"^[A-Z0-9][A-Z0-9]$")
_MLS_TYPES = ("FAILURE_ONLY", "ALWAYS_SEND")


class SbdhError(DocumentError, ValueError):
    """The envelope breaks a rule; ``code`` is a stable id for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Envelope:
    """What the SBDH says about the document it carries."""

    sender: str  # "0007:2120000787"
    receiver: str
    document_type_scheme: str
    document_type: str  # value, without scheme
    process_scheme: str
    process: str
    country_c1: str | None  # None only when read with require_country=False
    instance_identifier: str
    creation: datetime
    standard: str
    type: str
    type_version: str
    mls_to: str | None = None
    mls_type: str | None = None

    @property
    def action(self) -> str:
        """The AS4 ``eb:Action``: document type with its scheme."""
        return f"{self.document_type_scheme}::{self.document_type}"


def _n(local: str) -> str:
    return f"{{{SBDH_NS}}}{local}"


def _sub(parent: etree._Element, local: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, _n(local), attrs)
    if text is not None:
        el.text = text
    return el


def _header(
    sbd: etree._Element,
    root_ns: str,
    local: str,
    *,
    sender: str,
    receiver: str,
    document_type: str,
    process: str,
    country_c1: str,
    document_type_scheme: str,
    process_scheme: str,
    instance_identifier: str | None,
    creation: datetime | None,
    mls_to: str | None,
    mls_type: str | None,
) -> etree._Element:
    """The StandardBusinessDocumentHeader for a document with root ``{root_ns}local``."""
    type_version = document_type.rsplit("::", 1)[-1] if "::" in document_type else "2.1"
    header = _sub(sbd, "StandardBusinessDocumentHeader")
    _sub(header, "HeaderVersion", "1.0")
    _sub(_sub(header, "Sender"), "Identifier", sender, Authority=PARTICIPANT_SCHEME)
    _sub(_sub(header, "Receiver"), "Identifier", receiver, Authority=PARTICIPANT_SCHEME)
    ident = _sub(header, "DocumentIdentification")
    _sub(ident, "Standard", root_ns)
    _sub(ident, "TypeVersion", type_version)
    _sub(ident, "InstanceIdentifier", instance_identifier or str(uuid.uuid4()))
    _sub(ident, "Type", local)
    stamp = (creation or datetime.now(UTC)).astimezone(UTC)
    _sub(ident, "CreationDateAndTime", stamp.isoformat(timespec="seconds").replace("+00:00", "Z"))
    scopes = _sub(header, "BusinessScope")
    for kind, value, ident_value in (
        ("DOCUMENTID", document_type, document_type_scheme),
        ("PROCESSID", process, process_scheme),
        ("COUNTRY_C1", country_c1, None),
        ("MLS_TO", mls_to, PARTICIPANT_SCHEME),
        ("MLS_TYPE", mls_type, None),
    ):
        if value is None:
            continue
        scope = _sub(scopes, "Scope")
        _sub(scope, "Type", kind)
        _sub(scope, "InstanceIdentifier", value)
        if ident_value:
            _sub(scope, "Identifier", ident_value)
    return header


def build_sbd(
    document: bytes | BusinessDocument,
    *,
    sender: str,
    receiver: str,
    document_type: str,
    process: str,
    country_c1: str,
    document_type_scheme: str = "busdox-docid-qns",
    process_scheme: str = "cenbii-procid-ubl",
    instance_identifier: str | None = None,
    creation: datetime | None = None,
    mls_to: str | None = None,
    mls_type: str | None = None,
) -> bytes:
    """Wrap an XML business document in a Peppol SBDH and return the whole SBD as UTF-8.

    A :class:`BusinessDocument` is not parsed again, nor copied when it is a document of its
    own: the envelope is serialized around a place holder and the document's tree serialized
    into it, the same bytes as the document appended to the envelope and the whole serialized
    (the document object stays as it was, for the steps after this one). One taken out of
    another tree is copied in (serialized alone it would carry its old ancestors' namespaces)."""
    business = document if isinstance(document, BusinessDocument) else BusinessDocument.parse(document)
    doc = business.root
    if doc.getparent() is not None:
        doc = copy.deepcopy(doc)
    root_ns, _, local = doc.tag[1:].partition("}") if doc.tag.startswith("{") else ("", "", doc.tag)
    sbd = etree.Element(_n("StandardBusinessDocument"), nsmap={None: SBDH_NS})
    header = _header(
        sbd, root_ns, local, sender=sender, receiver=receiver, document_type=document_type, process=process,
        country_c1=country_c1, document_type_scheme=document_type_scheme, process_scheme=process_scheme,
        instance_identifier=instance_identifier, creation=creation, mls_to=mls_to, mls_type=mls_type,
    )  # fmt: skip
    if doc is not business.root:
        sbd.append(doc)
        return etree.tostring(sbd, xml_declaration=True, encoding="UTF-8")
    marker = f"document-{uuid.uuid4().hex}"
    header.tail = marker
    prefix, suffix = etree.tostring(sbd, xml_declaration=True, encoding="UTF-8").split(marker.encode())
    return b"".join((prefix, etree.tostring(doc, encoding="UTF-8", xml_declaration=False, with_tail=False), suffix))


def sbd_frame(
    root_ns: str,
    local: str,
    *,
    sender: str,
    receiver: str,
    document_type: str,
    process: str,
    country_c1: str,
    document_type_scheme: str = "busdox-docid-qns",
    process_scheme: str = "cenbii-procid-ubl",
    instance_identifier: str | None = None,
    creation: datetime | None = None,
    mls_to: str | None = None,
    mls_type: str | None = None,
) -> tuple[bytes, bytes]:
    """What goes before and after a business document's own bytes to make its SBD, for a
    document too large to parse into a tree: ``prefix ‖ document ‖ suffix`` (the document
    without its XML declaration, in UTF-8) is what :func:`build_sbd` makes, with the same
    header. The SBDH elements carry a prefix, not the default namespace, so that unprefixed
    elements of a document in no namespace stay in no namespace."""
    sbd = etree.Element(_n("StandardBusinessDocument"), nsmap={"sh": SBDH_NS})
    header = _header(
        sbd, root_ns, local, sender=sender, receiver=receiver, document_type=document_type, process=process,
        country_c1=country_c1, document_type_scheme=document_type_scheme, process_scheme=process_scheme,
        instance_identifier=instance_identifier, creation=creation, mls_to=mls_to, mls_type=mls_type,
    )  # fmt: skip
    marker = f"document-{uuid.uuid4().hex}"
    header.tail = marker
    whole = etree.tostring(sbd, xml_declaration=True, encoding="UTF-8")
    prefix, suffix = whole.split(marker.encode())
    return prefix, suffix


def _text(parent: etree._Element, path: str) -> str:
    return (parent.findtext(path) or "").strip()


def is_sbd(root: etree._Element) -> bool:
    """Whether a parsed root is a Standard Business Document (an envelope, not a bare document)."""
    return root.tag == _n("StandardBusinessDocument")


def read_submitted(data: bytes | BusinessDocument) -> tuple[Envelope | None, BusinessDocument]:
    """Parse what was submitted once: a ready SBD gives its envelope (checked for sending) and
    the document inside it; a bare document gives no envelope. Raises ``as4.As4Error`` when the
    bytes are not XML, :class:`SbdhError` when the envelope breaks a rule."""
    business = data if isinstance(data, BusinessDocument) else BusinessDocument.parse(data)
    if not is_sbd(business.root):
        return None, business
    return read_envelope(business.root)


def read_envelope(data: bytes | etree._Element, *, require_country: bool = True) -> tuple[Envelope, BusinessDocument]:
    """:func:`read_sbd`, with the business document as a :class:`BusinessDocument`."""
    envelope, doc = read_sbd(data, require_country=require_country)
    return envelope, BusinessDocument(doc)


def read_sbd(data: bytes | etree._Element, *, require_country: bool = True) -> tuple[Envelope, etree._Element]:
    """Parse an SBD (or take its parsed root), check the envelope rules, and return it with the
    business document root.

    A receiving access point accepts an envelope without ``COUNTRY_C1`` (``require_country=False``):
    the message is non-compliant, but it was delivered and is reported with country ``ZZ``."""
    if isinstance(data, etree._Element):
        root = data
    else:
        try:
            root = parse_xml(data, "business message", large=True)
        except as4.As4Error as exc:  # not well-formed, or a DTD / entity
            raise SbdhError("invalid-sbd-xml", exc.reason) from None
    if root.tag != _n("StandardBusinessDocument"):
        raise SbdhError("missing-sbdh", "the root element is not StandardBusinessDocument")
    header = root.find(_n("StandardBusinessDocumentHeader"))
    if header is None:
        raise SbdhError("missing-sbdh", "StandardBusinessDocumentHeader is missing")
    if _text(header, _n("HeaderVersion")) != "1.0":
        raise SbdhError("invalid-header-version", "HeaderVersion must be 1.0")
    parties: dict[str, str] = {}
    for side in ("Sender", "Receiver"):
        found = header.findall(f"{_n(side)}/{_n('Identifier')}")
        if len(header.findall(_n(side))) != 1 or len(found) != 1:
            raise SbdhError(f"invalid-{side.lower()}-count", f"exactly one {side} is required")
        if found[0].get("Authority") != PARTICIPANT_SCHEME:
            raise SbdhError(
                f"invalid-{side.lower()}-authority",
                f"{side} Authority must be {PARTICIPANT_SCHEME}",
            )
        value = (found[0].text or "").strip()
        if not re.match(r"^[0-9]{4}:\S{1,130}$", value):
            raise SbdhError(f"invalid-{side.lower()}-value", f"{side} {value!r} is not a participant id")
        parties[side] = value
    ident = header.find(_n("DocumentIdentification"))
    if ident is None:
        raise SbdhError("missing-document-identification", "DocumentIdentification is missing")
    scopes_el = header.find(_n("BusinessScope"))
    if scopes_el is None:
        raise SbdhError("business-scope-missing", "BusinessScope is missing")
    scopes: dict[str, tuple[str, str]] = {}
    for scope in scopes_el.findall(_n("Scope")):
        kind = _text(scope, _n("Type"))
        if kind in scopes:
            raise SbdhError("duplicate-scope", f"scope {kind} appears twice")
        scopes[kind] = (_text(scope, _n("InstanceIdentifier")), _text(scope, _n("Identifier")))
    if len(scopes) < (3 if require_country else 2):
        raise SbdhError("invalid-scope-count", "at least three scopes are required")
    if not scopes.get("DOCUMENTID", ("", ""))[0]:
        raise SbdhError("missing-document-type-identifier", "DOCUMENTID scope is missing")
    if not scopes.get("PROCESSID", ("", ""))[0]:
        raise SbdhError("missing-process-identifier", "PROCESSID scope is missing")
    doc_value, doc_scheme = scopes["DOCUMENTID"]
    doc_scheme = doc_scheme or "busdox-docid-qns"
    if doc_scheme not in ("busdox-docid-qns", "peppol-doctype-wildcard") or "*" in doc_value:
        raise SbdhError("invalid-document-type-identifier", f"document type {doc_value!r}")
    proc_value, proc_scheme = scopes["PROCESSID"]
    country: str | None = scopes.get("COUNTRY_C1", ("", ""))[0]
    if "COUNTRY_C1" not in scopes and not require_country:
        country = None
    elif not _COUNTRY.match(country or ""):
        raise SbdhError("invalid-country-c1", f"COUNTRY_C1 {country!r} is not a country code")
    mls_type = scopes.get("MLS_TYPE", (None, ""))[0]
    if mls_type is not None and mls_type not in _MLS_TYPES:
        raise SbdhError("invalid-mls-type", f"MLS_TYPE {mls_type!r}")

    business = [child for child in root if isinstance(child.tag, str) and child is not header]
    if len(business) != 1:
        raise SbdhError("invalid-payload", "exactly one business document must follow the header")
    doc = business[0]
    doc_ns, _, doc_local = doc.tag[1:].partition("}") if doc.tag.startswith("{") else ("", "", doc.tag)
    standard = _text(ident, _n("Standard"))
    type_version = _text(ident, _n("TypeVersion"))
    type_ = _text(ident, _n("Type"))
    if standard != doc_ns or not doc_value.startswith(standard):
        raise SbdhError("invalid-standard", f"Standard {standard!r} is not the document's namespace")
    if type_ != doc_local:
        raise SbdhError("invalid-type", f"Type {type_!r} is not the document's root element")
    if not doc_value.endswith("::" + type_version):
        raise SbdhError("invalid-type-version", f"TypeVersion {type_version!r} does not end the doctype")
    instance = _text(ident, _n("InstanceIdentifier"))
    if not instance:
        raise SbdhError("invalid-instance-identifier", "InstanceIdentifier is empty")
    created_text = _text(ident, _n("CreationDateAndTime"))
    try:
        created = datetime.fromisoformat(created_text.replace("Z", "+00:00"))
    except ValueError:
        raise SbdhError("invalid-creation-date-time", f"{created_text!r}") from None
    if created.tzinfo is None:
        raise SbdhError("invalid-creation-date-time", "CreationDateAndTime needs a time zone")
    return (
        Envelope(
            sender=parties["Sender"],
            receiver=parties["Receiver"],
            document_type_scheme=doc_scheme,
            document_type=doc_value,
            process_scheme=proc_scheme or "cenbii-procid-ubl",
            process=proc_value,
            country_c1=country,
            instance_identifier=instance,
            creation=created,
            standard=standard,
            type=type_,
            type_version=type_version,
            mls_to=scopes.get("MLS_TO", (None, ""))[0],
            mls_type=mls_type,
        ),
        doc,
    )
