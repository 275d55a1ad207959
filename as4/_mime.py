"""MIME multipart/related framing of an AS4 message (SOAP with attachments)."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass

from as4._errors import FeatureNotSupported, MimeInconsistency

__all__ = ["MimePart", "build_multipart", "parse_content_type", "parse_multipart"]


@dataclass(frozen=True)
class MimePart:
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def content_id(self) -> str | None:
        cid = self.headers.get("content-id")
        return cid.strip().strip("<>") if cid else None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "text/plain").split(";", 1)[0].strip().lower()


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into its lower-cased type and its parameters."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1
            params[name] = "".join(chars)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            params[name] = rest[i:end].strip()
            i = end
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
        parts.append(_parse_part(body[part_start:part_end]))
        pos = nxt + 1 + len(delimiter)
        if len(parts) > 64:
            raise MimeInconsistency("too many MIME parts")
    if not parts:
        raise MimeInconsistency("multipart body has no parts")
    return parts


def _parse_part(raw: bytes) -> MimePart:
    sep = raw.find(b"\r\n\r\n")
    skip = 4
    lf = raw.find(b"\n\n")
    if sep < 0 or (0 <= lf < sep):
        sep, skip = lf, 2
    if sep < 0:
        if raw.startswith((b"\r\n", b"\n")):
            return MimePart({}, raw.split(b"\n", 1)[1])
        raise MimeInconsistency("MIME part without a header/body separator")
    headers = _parse_headers(raw[:sep])
    body = raw[sep + skip :]
    encoding = headers.get("content-transfer-encoding", "binary").strip().lower()
    if encoding == "base64":
        try:
            body = base64.b64decode(b"".join(body.split()), validate=True)
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
    boundary = f"----=_Part_{uuid.uuid4().hex}"
    root_id = f"root.{uuid.uuid4().hex}@{domain}"
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
