"""Incremental codecs for messages too large to hold: each takes chunks and returns chunks.

gzip and AES-GCM in both directions, a MIME multipart splitter, and on top of them
:class:`MessageWriter` (the streaming :func:`as4.build_user_message`) and
:class:`MessageReader` (the streaming :func:`as4.parse_user_message`). No I/O here: the
caller moves the chunks between sockets, files and the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import zlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from as4._build import to_milliseconds, user_message_soap
from as4._crypto import CHUNK, IV_LEN, TAG_LEN
from as4._dsig import Sha256Digest, VerifiedSignature, verify_signature
from as4._errors import (
    As4Error,
    DecompressionFailure,
    FailedAuthentication,
    FailedDecryption,
    FeatureNotSupported,
    MimeInconsistency,
    OtherError,
    PolicyNoncompliance,
    ValueInconsistent,
)
from as4._ids import uid as _uid
from as4._mime import MimePart, _parse_headers, parse_content_type
from as4._model import ReceivedMessage, UserMessageHeader
from as4._parse import ParseTrace, SoapMessage, _decrypt_key, read_soap, seat_id, user_message_header
from as4._xml import c14n

__all__ = [
    "GcmDecryptor",
    "GcmEncryptor",
    "GzipDecoder",
    "GzipEncoder",
    "MessageReader",
    "MessageWriter",
    "MimeSplitter",
    "StreamedFrame",
]

MAX_SOAP_BYTES = 4 * 1024 * 1024  # the SOAP part is a header of a few KB; anything bigger is abuse


class GzipEncoder:
    """gzip (RFC 1952), fed in chunks, hashing the output as it goes."""

    def __init__(self, level: int = 6) -> None:
        self._comp = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.digest = hashlib.sha256()

    def feed(self, chunk: bytes | memoryview) -> bytes:
        out = self._comp.compress(chunk)
        self.digest.update(out)
        return out

    def finish(self) -> bytes:
        out = self._comp.flush()
        self.digest.update(out)
        return out


class GzipDecoder:
    """gunzip in chunks, refusing output beyond ``limit`` bytes (gzip bombs)."""

    def __init__(self, limit: int) -> None:
        self._d = zlib.decompressobj(31)
        self.limit = limit
        self.size = 0

    def _count(self, out: bytes) -> bytes:
        self.size += len(out)
        if self.size > self.limit:
            raise DecompressionFailure(f"decompressed payload exceeds {self.limit} bytes")
        return out

    def feed(self, chunk: bytes | memoryview) -> list[bytes]:
        outs: list[bytes] = []
        buf: bytes | memoryview = chunk
        try:
            while buf and not self._d.eof:
                out = self._d.decompress(buf, CHUNK)
                if out:
                    outs.append(self._count(out))
                buf = self._d.unconsumed_tail
        except zlib.error as exc:
            raise DecompressionFailure(f"payload is not valid gzip: {exc}") from None
        return outs

    def finish(self) -> list[bytes]:
        outs: list[bytes] = []
        try:
            while not self._d.eof:
                out = self._d.decompress(b"", CHUNK)
                if not out:
                    break
                outs.append(self._count(out))
        except zlib.error as exc:
            raise DecompressionFailure(f"payload is not valid gzip: {exc}") from None
        if not self._d.eof:
            raise DecompressionFailure("payload gzip stream is truncated")
        return outs


class GcmEncryptor:
    """AES-GCM as XML Encryption 1.1 lays it out: ``IV ‖ ciphertext ‖ tag``, in chunks."""

    def __init__(self, key: bytes) -> None:
        iv = os.urandom(IV_LEN)
        self._enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        self._iv: bytes | None = iv
        self.size = 0

    def feed(self, chunk: bytes | memoryview) -> bytes:
        out = self._enc.update(chunk)
        if self._iv is not None:
            out, self._iv = self._iv + out, None
        self.size += len(out)
        return out

    def finish(self) -> bytes:
        out = (self._iv or b"") + self._enc.finalize() + self._enc.tag
        self._iv = None
        self.size += len(out)
        return out


class GcmDecryptor:
    """The inverse of :class:`GcmEncryptor`: the tag is the last 16 bytes, so they are held back
    until :meth:`finish`, which authenticates everything returned so far."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._dec: object | None = None
        self._held = b""

    def feed(self, chunk: bytes | memoryview) -> bytes:
        data = self._held + bytes(chunk) if self._held else bytes(chunk)
        if self._dec is None:
            if len(data) < IV_LEN + TAG_LEN:
                self._held = data
                return b""
            self._dec = Cipher(algorithms.AES(self._key), modes.GCM(data[:IV_LEN])).decryptor()
            data = data[IV_LEN:]
        self._held = data[-TAG_LEN:]
        return self._dec.update(data[:-TAG_LEN])  # type: ignore[attr-defined, no-any-return]

    def finish(self) -> bytes:
        if self._dec is None or len(self._held) != TAG_LEN:
            raise FailedDecryption("encrypted attachment is too short for AES-GCM")
        try:
            return self._dec.finalize_with_tag(self._held)  # type: ignore[attr-defined, no-any-return]
        except (InvalidTag, ValueError):
            raise FailedDecryption("attachment failed AES-GCM authentication") from None


@dataclass(frozen=True)
class StreamedFrame:
    """What goes around the encrypted attachment on the wire: ``prefix ‖ attachment ‖ suffix``."""

    header: UserMessageHeader
    prefix: bytes
    suffix: bytes
    attachment_size: int
    content_type: str
    digests: dict[str, str]  # reference URI -> base64 digest, for checking the receipt
    payload_content_id: str

    @property
    def size(self) -> int:
        return len(self.prefix) + self.attachment_size + len(self.suffix)


class MessageWriter:
    """Build a signed, encrypted Peppol AS4 UserMessage from payload chunks.

    :meth:`feed` returns encrypted attachment bytes for the caller to keep (a file); the SOAP
    part needs the digest of the whole compressed payload, so it is made at :meth:`finish`,
    which returns the last attachment bytes and the frame to send around them.
    """

    def __init__(
        self,
        header: UserMessageHeader,
        *,
        signing_key: rsa.RSAPrivateKey,
        signing_cert: x509.Certificate,
        receiver_cert: x509.Certificate,
        compress: bool = True,
        content_id: str | None = None,
    ) -> None:
        receiver_key = receiver_cert.public_key()
        if not isinstance(receiver_key, rsa.RSAPublicKey):
            raise ValueError("the receiver's certificate does not hold an RSA key")
        self.header = to_milliseconds(header)
        self.content_id = content_id or f"sbd-{_uid()}@peppol-gateway"
        self._signing = (signing_key, signing_cert)
        self._receiver = (receiver_cert, receiver_key)
        self._gzip = GzipEncoder() if compress else None
        self._digest = hashlib.sha256()
        self._key = os.urandom(16)
        self._gcm = GcmEncryptor(self._key)

    def feed(self, chunk: bytes | memoryview) -> bytes:
        if self._gzip is not None:
            chunk = self._gzip.feed(chunk)
        else:
            self._digest.update(chunk)
        return self._gcm.feed(chunk)

    def finish(self) -> tuple[bytes, StreamedFrame]:
        if self._gzip is not None:
            last = self._gcm.feed(self._gzip.finish())
            sha = self._gzip.digest.digest()
        else:
            last, sha = b"", self._digest.digest()
        last += self._gcm.finish()
        receiver_cert, receiver_key = self._receiver
        soap, digests = user_message_soap(
            self.header,
            self.content_id,
            self._gzip is not None,
            sha,
            signing_key=self._signing[0],
            signing_cert=self._signing[1],
            receiver_cert=receiver_cert,
            receiver_key=receiver_key,
            aes_key=self._key,
        )
        boundary = f"----=_Part_{_uid()}"
        root_id = f"root.{_uid()}@peppol-gateway"
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
                "Content-Type: application/octet-stream\r\n"
                "Content-Transfer-Encoding: binary\r\n"
                f"Content-ID: <{self.content_id}>\r\n\r\n"
            ).encode()
        )
        content_type = (
            f'multipart/related; type="application/soap+xml"; boundary="{boundary}"; '
            f'start="<{root_id}>"; start-info="application/soap+xml"'
        )
        frame = StreamedFrame(
            self.header,
            prefix,
            f"\r\n--{boundary}--\r\n".encode(),
            self._gcm.size,
            content_type,
            digests,
            self.content_id,
        )
        return last, frame


# --- receiving -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartStart:
    headers: dict[str, str]


@dataclass(frozen=True)
class PartData:
    data: bytes


class MimeSplitter:
    """Split a multipart body fed in chunks into part starts and part data.

    Only a delimiter's length is ever held back, so memory stays bounded whatever the part
    sizes; part headers are capped at 8 KB.
    """

    def __init__(self, boundary: str) -> None:
        if not boundary or len(boundary) > 200:
            raise MimeInconsistency("multipart Content-Type without a usable boundary")
        self._delim = b"--" + boundary.encode("latin-1")
        self._buf = b"\n"  # the first delimiter may open the body
        self._state = "preamble"  # preamble | delimiter | headers | data | done
        self.parts = 0

    def feed(self, chunk: bytes | memoryview) -> list[PartStart | PartData]:
        self._buf += bytes(chunk)
        events: list[PartStart | PartData] = []
        delim, seek = self._delim, b"\n" + self._delim
        while True:
            state, buf = self._state, self._buf
            if state == "done":
                self._buf = b""
                return events
            if state in ("preamble", "data"):
                at = buf.find(seek)
                if at < 0:
                    keep = len(seek) + 1
                    if len(buf) > keep:
                        if state == "data":
                            events.append(PartData(buf[:-keep]))
                        self._buf = buf[-keep:]
                    return events
                if state == "data":
                    end = at - 1 if at > 0 and buf[at - 1 : at] == b"\r" else at
                    if end:
                        events.append(PartData(buf[:end]))
                self._buf, self._state = buf[at + 1 :], "delimiter"
                continue
            if state == "delimiter":
                if len(buf) < len(delim) + 2:
                    return events
                if buf[len(delim) : len(delim) + 2] == b"--":
                    self._state = "done"
                    continue
                line_end = buf.find(b"\n", len(delim))
                if line_end < 0:
                    if len(buf) > len(delim) + 1024:
                        raise MimeInconsistency("MIME boundary line is too long")
                    return events
                self._buf, self._state = buf[line_end + 1 :], "headers"
                continue
            # headers
            if buf.startswith((b"\r\n", b"\n")):
                head, rest = b"", buf[buf.index(b"\n") + 1 :]
            else:
                crlf, lf = buf.find(b"\r\n\r\n"), buf.find(b"\n\n")
                if crlf < 0 and lf < 0:
                    if len(buf) > 8192:
                        raise MimeInconsistency("MIME part without a header/body separator")
                    return events
                if crlf < 0 or (0 <= lf < crlf):
                    head, rest = buf[:lf], buf[lf + 2 :]
                else:
                    head, rest = buf[:crlf], buf[crlf + 4 :]
            self.parts += 1
            if self.parts > 64:
                raise MimeInconsistency("too many MIME parts")
            events.append(PartStart(_parse_headers(head)))
            self._buf, self._state = rest, "data"

    def finish(self) -> None:
        if self._state == "preamble":
            raise MimeInconsistency("MIME boundary not found in the body")
        if self._state != "done":
            raise MimeInconsistency("MIME body is truncated: closing boundary missing")
        if not self.parts:
            raise MimeInconsistency("multipart body has no parts")


class _Base64Stream:
    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> bytes:
        joined = self._rest + b"".join(data.split())
        cut = len(joined) - len(joined) % 4
        self._rest = joined[cut:]
        try:
            return base64.b64decode(joined[:cut], validate=True)
        except (binascii.Error, ValueError):
            raise MimeInconsistency("MIME part has invalid base64 content") from None

    def finish(self) -> None:
        if self._rest:
            raise MimeInconsistency("MIME part has invalid base64 content")


class MessageReader:
    """Parse, decrypt, verify and decompress one Peppol AS4 UserMessage fed in chunks.

    The same checks as :func:`as4.parse_user_message`, in the same order where the order can be
    kept: the SOAP part is checked when it is complete, the key is unwrapped when the payload
    part starts, and the AES-GCM tag, the signature and then decompression are judged at
    :meth:`finish`. :meth:`feed` returns decompressed payload chunks, which the caller must not
    use before :meth:`finish` returned. The SOAP part must come before the payload (as every
    AS4 implementation sends it); a payload before it is held in memory until it arrives.
    """

    def __init__(
        self,
        content_type: str,
        *,
        our_key: rsa.RSAPrivateKey,
        our_cert: x509.Certificate,
        max_payload_bytes: int = 200 * 1024 * 1024,
        require_sender_cn: bool = True,
        trace: ParseTrace | None = None,
    ) -> None:
        mime_type, params = parse_content_type(content_type or "")
        if mime_type != "multipart/related":
            raise MimeInconsistency(f"Content-Type {mime_type or '(none)'!r} is not a streamable AS4 message")
        self._splitter = MimeSplitter(params.get("boundary", ""))
        self._start = params.get("start", "").strip().strip("<>")
        self._keys = (our_key, our_cert)
        self.max_payload_bytes = max_payload_bytes
        self.require_sender_cn = require_sender_cn
        self.trace = trace if trace is not None else ParseTrace()
        self.message_bytes = 0
        self._part: str | None = None  # "soap" | "payload" | "other"
        self._soap_buf = bytearray()
        self._soap: SoapMessage | None = None
        self._soap_headers: dict[str, str] = {}
        self._href = ""
        self._mime = ""
        self._compressed = False
        self._payload_headers: dict[str, str] | None = None
        self._early: list[bytes] = []  # payload bytes that arrived before the SOAP part
        self._payload_size = 0
        self._b64: _Base64Stream | None = None
        self._gcm: GcmDecryptor | None = None
        self._digest = hashlib.sha256()
        self._gunzip: GzipDecoder | None = None
        self._late_error: As4Error | None = None  # a decompression failure, judged last
        self._plain_size = 0

    def feed(self, chunk: bytes | memoryview) -> list[bytes]:
        self.message_bytes += len(chunk)
        out: list[bytes] = []
        for event in self._splitter.feed(chunk):
            if isinstance(event, PartStart):
                self._begin_part(event.headers, out)
            elif self._part == "soap":
                self._soap_buf += event.data
                if len(self._soap_buf) > MAX_SOAP_BYTES:
                    raise MimeInconsistency("the SOAP part is too large")
            elif self._part == "payload":
                self._payload_data(event.data, out)
        return out

    def _begin_part(self, headers: dict[str, str], out: list[bytes]) -> None:
        self._end_part(out)
        part = MimePart(headers, b"")
        encoding = headers.get("content-transfer-encoding", "binary").strip().lower()
        if encoding not in ("binary", "8bit", "7bit", "base64"):
            raise FeatureNotSupported(f"Content-Transfer-Encoding {encoding!r} is not supported")
        is_root = part.content_id == self._start if self._start else self._soap is None and self._part is None
        if is_root:
            self._part, self._soap_headers = "soap", headers
            return
        if self._payload_headers is not None:
            if self._soap is not None:
                raise ValueInconsistent("Peppol messages carry exactly one payload attachment")
            self._part = "other"
            return
        self._part, self._payload_headers = "payload", headers
        self._b64 = _Base64Stream() if encoding == "base64" else None
        if self._soap is not None:
            self._open_payload()

    def _end_part(self, out: list[bytes]) -> None:
        if self._part == "soap" and self._soap is None:
            self._soap_done(out)
        self._part = None

    def _soap_done(self, out: list[bytes]) -> None:
        part = MimePart(self._soap_headers, b"")
        if part.content_type not in ("application/soap+xml", "text/xml", "application/xml"):
            raise MimeInconsistency(f"root part has type {part.content_type!r}")
        body = bytes(self._soap_buf)
        encoding = self._soap_headers.get("content-transfer-encoding", "binary").strip().lower()
        if encoding == "base64":
            b64 = _Base64Stream()
            body = b64.feed(body)
            b64.finish()
        soap = read_soap(body, "application/soap+xml")
        self._soap_buf = bytearray()
        header, self._href, self._mime, self._compressed = user_message_header(soap)
        self.trace.header = header
        if len(soap.body):
            raise ValueInconsistent("the SOAP Body must be empty: the payload travels as an attachment")
        if soap.security is None:
            raise PolicyNoncompliance("the message has no wsse:Security header")
        self._soap = soap
        if self._payload_headers is not None:
            self._open_payload()
            early, self._early = self._early, []
            for data in early:
                self._decrypt(data, out)

    def _open_payload(self) -> None:
        assert self._soap is not None and self._payload_headers is not None
        cid = MimePart(self._payload_headers, b"").content_id
        if cid != self._href:
            raise ValueInconsistent(f"the first attachment is not the payload cid:{self._href}")
        self.trace.decrypted = False
        assert self._soap.security is not None
        key = _decrypt_key(self._soap.security, self._href, *self._keys)
        self._gcm = GcmDecryptor(key)
        self._gunzip = GzipDecoder(self.max_payload_bytes) if self._compressed else None

    def _payload_data(self, data: bytes, out: list[bytes]) -> None:
        if self._b64 is not None:
            data = self._b64.feed(data)
        self._payload_size += len(data)
        if self._gcm is None:
            self._early.append(data)
            return
        self._decrypt(data, out)

    def _decrypt(self, data: bytes, out: list[bytes]) -> None:
        assert self._gcm is not None
        self._plain(self._gcm.feed(data), out)

    def _plain(self, plain: bytes, out: list[bytes]) -> None:
        if not plain:
            return
        self._digest.update(plain)
        if self._late_error is not None:
            return
        try:
            if self._gunzip is not None:
                out.extend(self._gunzip.feed(plain))
            else:
                self._plain_size += len(plain)
                if self._plain_size > self.max_payload_bytes:
                    raise OtherError(f"payload exceeds {self.max_payload_bytes} bytes")
                out.append(plain)
        except As4Error as exc:
            self._late_error = exc

    def finish(self) -> tuple[ReceivedMessage, list[bytes]]:
        """Judge the message; the last payload chunks come with it."""
        self._splitter.finish()
        out: list[bytes] = []
        self._end_part(out)
        if self._b64 is not None:
            self._b64.finish()
        self.trace.attachments = (
            [(MimePart(self._payload_headers, b"").content_id or "", "application/octet-stream", self._payload_size)]
            if self._payload_headers is not None
            else []
        )
        if self._soap is None:
            raise MimeInconsistency(f"the start part <{self._start}> is not in the message")
        if self._gcm is None:
            raise ValueInconsistent("the message has no payload attachment")
        self._plain(self._gcm.finish(), out)
        self.trace.decrypted = True
        assert self._soap.security is not None
        verified: VerifiedSignature = verify_signature(
            self._soap.root,
            self._soap.security,
            {"messaging": self._soap.messaging, "body": self._soap.body},
            {self._href: Sha256Digest(self._digest.digest())},
        )
        self.trace.signature = verified
        header = self.trace.header
        assert header is not None
        if self.require_sender_cn and seat_id(verified.certificate) != header.from_party:
            raise FailedAuthentication(
                f"eb:From/PartyId {header.from_party!r} is not the signer {seat_id(verified.certificate)!r}"
            )
        if self._late_error is None and self._gunzip is not None:
            try:
                out.extend(self._gunzip.finish())
            except As4Error as exc:
                self._late_error = exc
        if self._late_error is not None:
            raise self._late_error
        size = self._gunzip.size if self._gunzip is not None else self._plain_size
        received = ReceivedMessage(
            header=header,
            payload=None,
            payload_size=size,
            payload_mime_type=self._mime,
            payload_content_id=self._href,
            compressed=self._compressed,
            signer_certificate=verified.certificate,
            references=verified.references,
            signed_references=[c14n(r) for r in verified.reference_elements],
            message_bytes=self.message_bytes,
        )
        return received, out
