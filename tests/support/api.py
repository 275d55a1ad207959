"""Calling the REST API as a client: a token from the OAuth2 endpoint, then authorised calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class Caller:
    session: aiohttp.ClientSession
    base: str
    token: str = ""

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with self.session.request(method, self.base + path, headers=headers, **kw) as r:
            ctype = r.headers.get("Content-Type", "")
            body = await r.json() if ctype.startswith("application/json") else await r.read()
            return r.status, body


async def token(
    session: aiohttp.ClientSession, base: str, client_id: str, secret: str, scope: str | None = None
) -> Caller:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    if scope:
        form["scope"] = scope
    async with session.post(base + "/oauth2/token", data=form) as r:
        body = await r.json()
        assert r.status == 200, body
    return Caller(session, base, body["access_token"])
