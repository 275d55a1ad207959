"""WS-Security XML signatures: create them and verify them without trusting the document.

Verification resolves every ``#id`` itself, insists that each expected part (Body, Messaging,
each attachment) is covered by exactly one reference and that the element covered is the one the
message actually uses, whitelists algorithms and transforms, and takes the key only from a
BinarySecurityToken. Those rules close the doors XML signature wrapping attacks use.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from as4._canon import attr
from as4._errors import FailedAuthentication, PolicyNoncompliance
from as4._model import ReferenceCheck
from as4._ns import (
    BASE64_BINARY,
    DS,
    EC,
    EXC_C14N,
    RSA_SHA256,
    SHA256,
    SWA_CONTENT_SIGNATURE,
    WSSE,
    WSU,
    X509V3,
    q,
)
from as4._xml import by_tag, c14n, child, children

__all__ = [
    "Sha256Digest",
    "VerifiedSignature",
    "bst_xml",
    "certificate_base64",
    "certificate_from_base64",
    "signature_xml",
    "verify_signature",
]


_WSU_ID = q(WSU, "Id")
_WSSE_BST = q(WSSE, "BinarySecurityToken")
_WSSE_STR = q(WSSE, "SecurityTokenReference")
_WSSE_REFERENCE = q(WSSE, "Reference")
_EC_INCLUSIVE_NAMESPACES = q(EC, "InclusiveNamespaces")
_DS_SIGNATURE = q(DS, "Signature")
_DS_SIGNED_INFO = q(DS, "SignedInfo")
_DS_SIGNATURE_VALUE = q(DS, "SignatureValue")
_DS_C14N_METHOD = q(DS, "CanonicalizationMethod")
_DS_SIGNATURE_METHOD = q(DS, "SignatureMethod")
_DS_REFERENCE = q(DS, "Reference")
_DS_TRANSFORMS = q(DS, "Transforms")
_DS_TRANSFORM = q(DS, "Transform")
_DS_DIGEST_METHOD = q(DS, "DigestMethod")
_DS_DIGEST_VALUE = q(DS, "DigestValue")
_DS_KEY_INFO = q(DS, "KeyInfo")


class Sha256Digest(bytes):
    """An attachment's SHA-256, computed while it streamed by, standing in for its content."""


@functools.lru_cache(maxsize=64)
def certificate_base64(cert: x509.Certificate) -> str:
    """The DER of ``cert`` in base64 without line breaks, as a BinarySecurityToken holds it."""
    return base64.b64encode(certificate_der(cert)).decode()


_SIGNED_INFO_HEAD = (
    f'<ds:SignedInfo xmlns:ds="{DS}">'
    f'<ds:CanonicalizationMethod Algorithm="{EXC_C14N}"></ds:CanonicalizationMethod>'
    f'<ds:SignatureMethod Algorithm="{RSA_SHA256}"></ds:SignatureMethod>'
)


def bst_xml(cert: x509.Certificate, bst_id: str) -> str:
    """A wsse:BinarySecurityToken holding ``cert``; ``wsse`` and ``wsu`` must be in scope."""
    return (
        f'<wsse:BinarySecurityToken EncodingType="{BASE64_BINARY}" ValueType="{X509V3}" wsu:Id="{attr(bst_id)}">'
        f"{certificate_base64(cert)}</wsse:BinarySecurityToken>"
    )


def signature_xml(
    references: list[tuple[str, str, bytes]],
    key: rsa.RSAPrivateKey,
    bst_id: str,
    signature_id: str,
) -> tuple[str, dict[str, str]]:
    """A ds:Signature over ``(uri, transform, sha256)`` references, its key referenced through
    the BinarySecurityToken ``bst_id`` (``wsse`` must be in scope where it is placed).

    SignedInfo is written in its exclusive canonical form (:mod:`as4._canon`), so the bytes
    signed are the bytes sent. Returns the element's text and URI -> base64 digest."""
    digests: dict[str, str] = {}
    parts = [_SIGNED_INFO_HEAD]
    for uri, transform, digest in references:
        value = base64.b64encode(digest).decode()
        digests[uri] = value
        parts.append(
            f'<ds:Reference URI="{attr(uri)}"><ds:Transforms><ds:Transform Algorithm="{attr(transform)}">'
            f'</ds:Transform></ds:Transforms><ds:DigestMethod Algorithm="{SHA256}"></ds:DigestMethod>'
            f"<ds:DigestValue>{value}</ds:DigestValue></ds:Reference>"
        )
    parts.append("</ds:SignedInfo>")
    signed_info = "".join(parts)
    value = base64.b64encode(key.sign(signed_info.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    return (
        f'<ds:Signature xmlns:ds="{DS}" Id="{attr(signature_id)}">{signed_info}'
        f"<ds:SignatureValue>{value}</ds:SignatureValue><ds:KeyInfo><wsse:SecurityTokenReference>"
        f'<wsse:Reference URI="#{attr(bst_id)}" ValueType="{X509V3}"/></wsse:SecurityTokenReference>'
        "</ds:KeyInfo></ds:Signature>"
    ), digests


def _first(parts: dict[str, list[etree._Element]], tag: str) -> etree._Element | None:
    """``find(tag)`` over children grouped by :func:`as4._xml.by_tag`."""
    found = parts.get(tag)
    return found[0] if found else None


@dataclass(frozen=True)
class VerifiedSignature:
    certificate: x509.Certificate
    references: list[ReferenceCheck]
    reference_elements: list[etree._Element]


def _prefixes(parent: etree._Element) -> list[str]:
    incl = child(parent, _EC_INCLUSIVE_NAMESPACES)
    if incl is None:
        return []
    return [p for p in (incl.get("PrefixList") or "").split() if p]


# Every id attribute of the document as a node-set: libxml2 walks the tree once, in C, and
# each result knows its element (``getparent``).
_ID_ATTRIBUTES = etree.XPath("//@wsu:Id | //@Id | //@ID | //@id", namespaces={"wsu": WSU})


def _ids(root: etree._Element) -> dict[str, list[etree._Element]]:
    """Elements by their id (``wsu:Id``, ``Id``, ``ID`` or ``id``), in one pass: an id held by
    more than one element (or twice by one) means someone planted a copy."""
    found: dict[str, list[etree._Element]] = {}
    for value in _ID_ATTRIBUTES(root):  # type: ignore[union-attr]
        found.setdefault(str(value), []).append(value.getparent())  # type: ignore[union-attr]
    return found


@functools.lru_cache(maxsize=64)
def certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def bst_certificate(security: etree._Element, key_info: etree._Element | None) -> x509.Certificate:
    """The certificate a KeyInfo points at through a SecurityTokenReference to a BST."""
    if key_info is None:
        raise PolicyNoncompliance("signature has no KeyInfo")
    ref = child(key_info, _WSSE_STR, _WSSE_REFERENCE)
    if ref is None or not (ref.get("URI") or "").startswith("#"):
        raise PolicyNoncompliance("the key must be referenced through a BinarySecurityToken (Peppol AS4 2.0.2+)")
    wanted = (ref.get("URI") or "")[1:]
    tokens = [t for t in children(security, _WSSE_BST) if t.get(_WSU_ID) == wanted]
    if len(tokens) != 1:
        raise PolicyNoncompliance(f"BinarySecurityToken {wanted!r} not found exactly once")
    token = tokens[0]
    if token.get("ValueType") != X509V3:
        raise PolicyNoncompliance(f"BinarySecurityToken ValueType {token.get('ValueType')!r}")
    try:
        return certificate_from_base64("".join((token.text or "").split()))
    except ValueError:
        raise FailedAuthentication("BinarySecurityToken does not hold an X.509 certificate") from None


@functools.lru_cache(maxsize=256)
def certificate_from_base64(text: str) -> x509.Certificate:
    """The certificate a BinarySecurityToken holds. A peer sends the same few certificates
    again and again: the same text gives the same (immutable) object, whose subject and key
    are then decoded only once. Raises ValueError for anything but base64 DER X.509."""
    return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))


def verify_signature(
    root: etree._Element,
    security: etree._Element,
    xml_targets: dict[str, etree._Element],
    attachments: Mapping[str, bytes | bytearray | Sha256Digest | None],
) -> VerifiedSignature:
    """Verify the one ds:Signature in ``security``.

    ``xml_targets`` maps a name ("messaging", "body") to the element the message really uses;
    ``attachments`` maps content ids to the (decrypted) attachment bytes, or to None when the
    content cannot be read (no key): its digest is then reported as unchecked. Every one of them
    must be covered by exactly one reference, and nothing else may be.
    """
    signatures = list(root.iter(_DS_SIGNATURE))
    if not signatures:
        raise PolicyNoncompliance("the message is not signed")
    if len(signatures) != 1 or signatures[0].getparent() is not security:
        raise FailedAuthentication("exactly one ds:Signature, inside wsse:Security, is allowed")
    signature = signatures[0]
    parts = by_tag(signature)
    signed_info = _first(parts, _DS_SIGNED_INFO)
    value_el = _first(parts, _DS_SIGNATURE_VALUE)
    if signed_info is None or value_el is None:
        raise FailedAuthentication("ds:Signature lacks SignedInfo or SignatureValue")
    signed = by_tag(signed_info)
    c14n_el = _first(signed, _DS_C14N_METHOD)
    if c14n_el is None or c14n_el.get("Algorithm") != EXC_C14N:
        raise PolicyNoncompliance("SignedInfo must use exclusive canonicalization")
    method = _first(signed, _DS_SIGNATURE_METHOD)
    if method is None or method.get("Algorithm") != RSA_SHA256:
        raise PolicyNoncompliance("signature method must be RSA-SHA256")

    by_element = {id(el): name for name, el in xml_targets.items()}
    ids = _ids(root)
    covered: set[str] = set()
    checks: list[ReferenceCheck] = []
    ref_elements: list[etree._Element] = []
    for ref in signed.get(_DS_REFERENCE, []):
        uri = ref.get("URI") or ""
        ref_parts = by_tag(ref)
        transform_els = [t for ts in ref_parts.get(_DS_TRANSFORMS, []) for t in children(ts, _DS_TRANSFORM)]
        transforms = [t.get("Algorithm") for t in transform_els]
        digest_method = _first(ref_parts, _DS_DIGEST_METHOD)
        digest_value = _first(ref_parts, _DS_DIGEST_VALUE)
        if digest_method is None or digest_method.get("Algorithm") != SHA256:
            raise PolicyNoncompliance(f"reference {uri!r}: digest method must be SHA-256")
        if digest_value is None or not (digest_value.text or "").strip():
            raise FailedAuthentication(f"reference {uri!r} has no DigestValue")
        data: bytes | bytearray | Sha256Digest | None
        if uri.startswith("#"):
            matches = ids.get(uri[1:], [])
            if len(matches) != 1:
                raise FailedAuthentication(f"reference {uri!r} matches {len(matches)} elements")
            target = by_element.get(id(matches[0]))
            if target is None:
                raise FailedAuthentication(f"reference {uri!r} does not point at the Body or Messaging header in use")
            if transforms != [EXC_C14N]:
                raise PolicyNoncompliance(f"reference {uri!r}: transforms {transforms} not allowed")
            data = c14n(matches[0], _prefixes(transform_els[0]))
        elif uri.startswith("cid:"):
            target = "attachment:" + uri[4:]
            if uri[4:] not in attachments:
                raise FailedAuthentication(f"reference {uri!r} names no attachment of this message")
            if transforms != [SWA_CONTENT_SIGNATURE]:
                raise PolicyNoncompliance(f"reference {uri!r}: transforms {transforms} not allowed")
            data = attachments[uri[4:]]
        else:
            raise FailedAuthentication(f"reference URI {uri!r} is not allowed")
        if target in covered:
            raise FailedAuthentication(f"{target} is covered by more than one reference")
        covered.add(target)
        try:
            expected = base64.b64decode("".join((digest_value.text or "").split()), validate=True)
        except ValueError:
            raise FailedAuthentication(f"reference {uri!r}: DigestValue is not base64") from None
        name = target.split(":", 1)[0]
        if data is None:
            checks.append(ReferenceCheck(uri, name, base64.b64encode(expected).decode(), None))
            ref_elements.append(ref)
            continue
        actual = data if isinstance(data, Sha256Digest) else hashlib.sha256(data).digest()
        if not hmac.compare_digest(actual, expected):
            raise FailedAuthentication(f"reference {uri!r}: digest does not match the content")
        checks.append(ReferenceCheck(uri, name, base64.b64encode(expected).decode(), True))
        ref_elements.append(ref)

    wanted = set(xml_targets) | {"attachment:" + cid for cid in attachments}
    missing = wanted - covered
    if missing:
        raise FailedAuthentication(f"not signed: {', '.join(sorted(missing))}")

    cert = bst_certificate(security, _first(parts, _DS_KEY_INFO))
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise FailedAuthentication("the signing certificate does not hold an RSA key")
    try:
        signature_bytes = base64.b64decode("".join((value_el.text or "").split()), validate=True)
        public_key.verify(
            signature_bytes,
            c14n(signed_info, _prefixes(c14n_el)),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, ValueError):
        raise FailedAuthentication("signature value does not verify with the sender's key") from None
    return VerifiedSignature(cert, checks, ref_elements)
