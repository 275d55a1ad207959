"""Hostile-input-safe XML parsing and exclusive canonicalization."""

from __future__ import annotations

from lxml import etree

from as4._errors import InvalidHeader

__all__ = ["by_tag", "c14n", "child", "children", "parse_xml"]


def _parser(huge: bool) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=huge,
        remove_blank_text=False,
        collect_ids=False,
    )


_PARSER = _parser(huge=False)
_HUGE_PARSER = _parser(huge=True)


def parse_xml(data: bytes, what: str = "SOAP envelope", *, large: bool = False) -> etree._Element:
    """Parse bytes into an element; any DTD (and so any entity) is refused.

    ``large`` lifts libxml2's 10 MB text-node limit, for business documents that embed
    attachments; SOAP headers never need it."""
    if data.find(b"!", 0, 65536) >= 0 and (  # one memchr rules both out for nearly every document
        data.find(b"<!DOCTYPE", 0, 4096) >= 0 or data.find(b"<!ENTITY", 0, 65536) >= 0
    ):
        raise InvalidHeader(f"{what}: document type declarations are not allowed")
    try:
        root = etree.fromstring(data, _HUGE_PARSER if large else _PARSER)
    except etree.XMLSyntaxError as exc:
        raise InvalidHeader(f"{what} is not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise InvalidHeader(f"{what}: document type declarations are not allowed")
    return root


def c14n(element: etree._Element, inclusive_prefixes: list[str] | None = None) -> bytes:
    """Exclusive XML canonicalization 1.0 without comments."""
    return etree.tostring(
        element,
        method="c14n",
        exclusive=True,
        with_comments=False,
        inclusive_ns_prefixes=inclusive_prefixes or None,
    )


def children(parent: etree._Element, *path: str) -> list[etree._Element]:
    """``parent.findall("a/b/c")`` for Clark-notation tags, walking children in C instead of
    through ElementPath's generators (several times cheaper for the few elements of a header)."""
    found = list(parent.iterchildren(path[0]))
    for tag in path[1:]:
        found = [c for el in found for c in el.iterchildren(tag)]
    return found


def by_tag(parent: etree._Element) -> dict[str, list[etree._Element]]:
    """The children of ``parent`` grouped by their Clark-notation tag, in document order, in one
    pass: cheaper than a lookup per tag when several are needed. Comments and processing
    instructions land under their factory function, never under a string."""
    found: dict[str, list[etree._Element]] = {}
    for el in parent:
        tag = el.tag
        if tag in found:
            found[tag].append(el)
        else:
            found[tag] = [el]
    return found


def child(parent: etree._Element, *path: str) -> etree._Element | None:
    """``parent.find("a/b")``: the first element at that path of Clark-notation tags, or None."""
    if len(path) == 1:
        for el in parent.iterchildren(path[0]):
            return el
        return None
    found = children(parent, *path)
    return found[0] if found else None
