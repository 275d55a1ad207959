"""Per-API-key rate limits (token bucket), with the usual headers and 429 + Retry-After.

The buckets live in the process: with N gateway processes behind a load balancer each key gets
N times the limit, which is the usual trade for not touching the database on every request.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.api.auth import PRINCIPAL
from gateway.api.envelope import ApiError

__all__ = ["RateLimiter"]


class RateLimiter:
    """``limit`` requests per ``window`` seconds per API key, refilled continuously."""

    def __init__(self, limit: int = 600, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._buckets: OrderedDict[Any, tuple[float, float]] = OrderedDict()

    def take(self, key: Any, now: float | None = None) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until full)."""
        now = time.monotonic() if now is None else now
        rate = self.limit / self.window
        tokens, last = self._buckets.get(key, (float(self.limit), now))
        tokens = min(float(self.limit), tokens + (now - last) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed, int(tokens), (self.limit - tokens) / rate

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def limit(request: web.Request, handler: Any) -> web.StreamResponse:
            principal = request.get(PRINCIPAL)
            if principal is None:
                return await handler(request)  # type: ignore[no-any-return]
            allowed, remaining, reset = self.take(principal.key_id)
            headers = {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(math.ceil(reset)),
            }
            if not allowed:
                retry = math.ceil(1 / (self.limit / self.window))
                error = ApiError(429, "rate_limit_exceeded", f"more than {self.limit} requests in {self.window:g}s")
                error.headers = {**headers, "Retry-After": str(retry)}  # type: ignore[attr-defined]
                raise error
            response = await handler(request)
            response.headers.update(headers)
            return response  # type: ignore[no-any-return]

        return limit
