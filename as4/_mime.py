"""MIME multipart/related framing of an AS4 message (SOAP with attachments)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from as4._errors import FeatureNotSupported, MimeInconsistency
from as4._ids import uid as _uid

__all__ = [
    "MimePart",
    "build_multipart",
    "frame_with_slot",
    "parse_content_type",
    "parse_multipart",
]


@dataclass(frozen=True)
class MimePart:
    headers: dict[str, str]  # lower-case names
    body: bytes | memoryview  # a view into the message body when not transfer-encoded

    @property
    def content_id(self) -> str | None:
        cid = self.headers.get("content-id")
        return cid.strip().strip("<>") if cid else None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "text/plain").split(";", 1)[0].strip().lower()


_PARAM = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


_QUOTED_PAIR = re.compile(r"\\(.)")


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into its lower-cased type and its parameters."""
    head, _, _ = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(value, len(head)):
        quoted, bare = match.group(2), match.group(3)
        if quoted is None:
            params[match.group(1).lower()] = bare
        else:
            params[match.group(1).lower()] = _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted
    return head.strip().lower(), params


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    for raw in block.replace(b"\r\n", b"\n").split(b"\n"):
        if not raw:
            continue
        line = raw.decode("latin-1")
        if line[0] in " \t" and last:
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MimeInconsistency(f"malformed MIME header line {line[:80]!r}")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


def parse_multipart(body: bytes, boundary: str) -> list[MimePart]:
    """Split a multipart body into parts, decoding base64 transfer encoding if used."""
    if not boundary or len(boundary) > 200:
        raise MimeInconsistency("multipart Content-Type without a usable boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    view = memoryview(body)
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 1 : start] != b"\n"):
        raise MimeInconsistency("MIME boundary not found in the body")
    parts: list[MimePart] = []
    pos = start + len(delimiter)
    while True:
        if body[pos : pos + 2] == b"--":
            break
        line_end = body.find(b"\n", pos)
        if line_end < 0:
            raise MimeInconsistency("MIME body ends inside a boundary line")
        part_start = line_end + 1
        nxt = body.find(b"\n" + delimiter, part_start)
        if nxt < 0:
            raise MimeInconsistency("MIME body is truncated: closing boundary missing")
        part_end = nxt - 1 if nxt > 0 and body[nxt - 1 : nxt] == b"\r" else nxt
        parts.append(_parse_part(view[part_start:part_end]))
        pos = nxt + 1 + len(delimiter)
        if len(parts) > 64:
            raise MimeInconsistency("too many MIME parts")
    if not parts:
        raise MimeInconsistency("multipart body has no parts")
    return parts


def _parse_part(raw: memoryview) -> MimePart:
    head = bytes(raw[:8192])
    sep = head.find(b"\r\n\r\n")
    skip = 4
    lf = head.find(b"\n\n", 0, sep if sep >= 0 else len(head))  # only one before sep matters
    if sep < 0 or (0 <= lf < sep):
        sep, skip = lf, 2
    if sep < 0:
        if head.startswith((b"\r\n", b"\n")):
            return MimePart({}, raw[head.index(b"\n") + 1 :])
        raise MimeInconsistency("MIME part without a header/body separator")
    headers = _parse_headers(head[:sep])
    body: bytes | memoryview = raw[sep + skip :]
    encoding = headers.get("content-transfer-encoding", "binary").strip().lower()
    if encoding == "base64":
        try:
            body = base64.b64decode(b"".join(bytes(body).split()), validate=True)
        except (binascii.Error, ValueError):
            raise MimeInconsistency("MIME part has invalid base64 content") from None
    elif encoding not in ("binary", "8bit", "7bit"):
        raise FeatureNotSupported(f"Content-Transfer-Encoding {encoding!r} is not supported")
    return MimePart(headers, body)


def build_multipart(
    soap: bytes, attachments: list[tuple[str, str, bytes]], domain: str = "peppol-gateway"
) -> tuple[bytes, str]:
    """Frame the SOAP part and ``(content_id, content_type, body)`` attachments.

    Returns the body and its Content-Type header value.
    """
    boundary = f"----=_Part_{_uid()}"
    root_id = f"root.{_uid()}@{domain}"
    chunks: list[bytes] = [
        f"--{boundary}\r\n"
        "Content-Type: application/soap+xml; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        f"Content-ID: <{root_id}>\r\n\r\n".encode(),
        soap,
    ]
    for content_id, content_type, data in attachments:
        chunks.append(
            f"\r\n--{boundary}\r\n"
            f"Content-Type: {content_type}\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{content_id}>\r\n\r\n".encode()
        )
        chunks.append(data)
    chunks.append(f"\r\n--{boundary}--\r\n".encode())
    content_type = (
        f'multipart/related; type="application/soap+xml"; boundary="{boundary}"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"'
    )
    return b"".join(chunks), content_type


def frame_with_slot(
    soap: bytes, content_id: str, content_type: str, size: int, domain: str = "peppol-gateway"
) -> tuple[bytearray, memoryview, str]:
    """Frame the SOAP part and one attachment of ``size`` bytes whose content the caller
    writes into the returned slot afterwards, so a large attachment is never copied."""
    boundary = f"----=_Part_{_uid()}"
    root_id = f"root.{_uid()}@{domain}"
    prefix = (
        (
            f"--{boundary}\r\n"
            "Content-Type: application/soap+xml; charset=UTF-8\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{root_id}>\r\n\r\n"
        ).encode()
        + soap
        + (
            f"\r\n--{boundary}\r\n"
            f"Content-Type: {content_type}\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{content_id}>\r\n\r\n"
        ).encode()
    )
    suffix = f"\r\n--{boundary}--\r\n".encode()
    body = bytearray(len(prefix) + size + len(suffix))
    body[: len(prefix)] = prefix
    body[len(prefix) + size :] = suffix
    header = (
        f'multipart/related; type="application/soap+xml"; boundary="{boundary}"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"'
    )
    return body, memoryview(body)[len(prefix) : len(prefix) + size], header
