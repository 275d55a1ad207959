"""Post a built message over HTTP(S) and turn the answer into a verified receipt or an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

import aiohttp
from cryptography import x509

from as4._crypto import CHUNK
from as4._errors import HttpStatusError, InvalidReceipt, TransportError
from as4._model import BuiltMessage, Receipt
from as4._signals import parse_signal, verify_receipt
from as4._stream import StreamedFrame
from as4._tls import tls_context

__all__ = ["send_message"]

MAX_ANSWER_BYTES = 4 * 1024 * 1024


async def send_message(
    session: aiohttp.ClientSession,
    url: str,
    message: BuiltMessage | StreamedFrame,
    *,
    receiver_cert: x509.Certificate | None = None,
    timeout: float = 60.0,
    attachment: BinaryIO | None = None,
) -> Receipt:
    """POST ``message`` to ``url``; return the verified receipt. Over https the server
    certificate is verified and TLS 1.2 or newer is required (:func:`tls_context`).

    Raises :class:`TransportError` (retryable), :class:`HttpStatusError`,
    :class:`EbmsErrorReceived` or :class:`InvalidReceipt`.

    A :class:`StreamedFrame` is sent around the encrypted ``attachment`` read from its file in
    chunks, with its Content-Length, so the message is never held whole.
    """
    headers = {"Content-Type": message.content_type, "MIME-Version": "1.0"}
    data: bytes | bytearray | AsyncIterator[bytes]
    if isinstance(message, StreamedFrame):
        if attachment is None:
            raise ValueError("a streamed message needs its attachment file")
        attachment.seek(0)
        data = _streamed_body(message, attachment)
        headers["Content-Length"] = str(message.size)
    else:
        data = message.body
    try:
        async with session.post(
            url,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
            ssl=tls_context(),
        ) as response:
            answer = await response.content.read(MAX_ANSWER_BYTES + 1)
            status = response.status
            content_type = response.headers.get("Content-Type", "")
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc
    if len(answer) > MAX_ANSWER_BYTES:
        raise InvalidReceipt("the answer is larger than any receipt")
    looks_like_soap = b"Envelope" in answer[:2048]
    if not looks_like_soap:
        raise HttpStatusError(status, answer[:200].decode("utf-8", "replace"))
    try:
        receipt = parse_signal(answer, content_type)
    except InvalidReceipt:
        if status >= 300:
            raise HttpStatusError(status, answer[:200].decode("utf-8", "replace")) from None
        raise
    verify_receipt(receipt, message, receiver_cert)
    return receipt


async def _streamed_body(frame: StreamedFrame, attachment: BinaryIO) -> AsyncIterator[bytes]:
    yield frame.prefix
    left = frame.attachment_size
    while left > 0:
        chunk = attachment.read(min(CHUNK, left))
        if not chunk:
            raise TransportError("the spooled attachment is shorter than its frame says")
        left -= len(chunk)
        yield chunk
    yield frame.suffix
