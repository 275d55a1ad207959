"""Per-API-key rate limits with the usual headers and 429 + Retry-After.

The buckets are shared by every gateway process on the database (``gateway.security.limits``),
so a key gets its limit once however many replicas serve it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from gateway.api.auth import ALLOWANCE, PRINCIPAL
from gateway.api.envelope import ApiError
from gateway.security.limits import RateLimit

__all__ = ["RateLimiter"]


class RateLimiter:
    """``limit`` requests per ``window`` seconds per API key, refilled continuously."""

    def __init__(self, pool: Callable[[web.Request], asyncpg.Pool], limit: int = 600, window: float = 60.0) -> None:
        self.pool = pool
        self.rule = RateLimit(limit, window)

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def limit(request: web.Request, handler: Any) -> web.StreamResponse:
            principal = request.get(PRINCIPAL)
            if principal is None:
                return await handler(request)  # type: ignore[no-any-return]
            allowance = request.get(ALLOWANCE)  # taken with the authentication
            if allowance is None:
                allowance = await self.rule.take(self.pool(request), str(principal.key_id))
            headers = {
                "X-RateLimit-Limit": str(self.rule.limit),
                "X-RateLimit-Remaining": str(allowance.remaining),
                "X-RateLimit-Reset": str(math.ceil(allowance.reset_seconds)),
            }
            if not allowance.allowed:
                retry = math.ceil(1 / self.rule.rate)
                error = ApiError(
                    429, "rate_limit_exceeded", f"more than {self.rule.limit} requests in {self.rule.window:g}s"
                )
                error.headers = {**headers, "Retry-After": str(retry)}  # type: ignore[attr-defined]
                raise error
            response = await handler(request)
            response.headers.update(headers)
            return response  # type: ignore[no-any-return]

        return limit
