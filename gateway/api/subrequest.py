"""REST requests made inside the application, answered by the REST handlers themselves.

The MCP tools act through the REST API: each tool call becomes one request to a ``/v1`` route,
carrying the caller's own ``Authorization`` header, and runs through the same middleware
(authentication, scopes, rate limit, request log, error envelope) and the same handler as over
HTTP. So a tool can do exactly what the token may do over REST, no more, and the rules live in
one place.

aiohttp has no public call for this; two small internals are used, both checked by the MCP
tests: ``Request.clone`` (public) of the incoming request before its body is read, with the
sub-request's body set as already read, and ``Application._handle``, the entry the server itself
calls for each request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import CIMultiDict

from gateway.core.requestid import current_request_id

__all__ = ["SubRequests", "SubResponse", "segment"]

# headers of the incoming request a sub-request keeps (the rest describe the outer request)
_KEPT = ("Authorization", "Host", "User-Agent", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id")


@dataclass(frozen=True)
class SubResponse:
    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The JSON body (every ``/v1`` answer but downloads is the JSON envelope)."""
        return json.loads(self.body)


def segment(value: str) -> str:
    """One path segment, quoted so a value can never reach another route."""
    return quote(value, safe="")


class SubRequests:
    """Makes REST requests on behalf of one incoming request, with its credentials."""

    def __init__(self, request: web.Request) -> None:
        # cloned now: aiohttp refuses to clone a request whose body was read
        self._template = request.clone()
        self._app = request.app
        self._headers = {name: request.headers[name] for name in _KEPT if name in request.headers}

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SubResponse:
        """Answer ``method path`` as the REST API would answer the caller."""
        sent = CIMultiDict(self._headers)
        sent.update(headers or {})
        request_id = current_request_id()
        if request_id is not None:
            sent["X-Request-Id"] = request_id  # one id in the log for the call and what it did
        if content_type is not None:
            sent["Content-Type"] = content_type
        sent["Content-Length"] = str(len(body))
        url = path + ("?" + urlencode(dict(query)) if query else "")
        inner = self._template.clone(method=method, rel_url=url, headers=sent)
        inner._read_bytes = body  # the body, as if read from the wire
        response = await self._app._handle(inner)
        if not isinstance(response, web.Response):  # a file or a stream: its bytes are not in memory
            raise TypeError(f"{method} {path} answered with a {type(response).__name__}")
        raw = response.body
        if raw is not None and not isinstance(raw, bytes | bytearray):
            raise TypeError(f"{method} {path} answered with a streamed body")
        return SubResponse(response.status, response.content_type, bytes(raw or b""), dict(response.headers))
