"""Request id, access logging and error mapping for every request."""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.api.envelope import ApiError, error_response
from gateway.core import tracing
from gateway.core.database import database_unavailable
from gateway.core.metrics import METRICS
from gateway.core.redact import mask_url_credentials
from gateway.core.requestid import new_request_id, request_id_var

__all__ = ["request_context"]

log = structlog.get_logger("gateway.http")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

RETRY_AFTER_SECONDS = 5  # how soon a caller (an API client, an AS4 sender) should try again


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id, trace and log one line per request, and turn every failure into the
    envelope."""
    request_id = new_request_id(request.headers.get("X-Request-Id"))
    token = request_id_var.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    attributes = {"http.request.method": request.method, "http.route": route, "gateway.request_id": request_id}
    try:
        with tracing.span(f"{request.method} {route}", **attributes) as current:
            response = await _answer(request, handler, route)
            response.headers["X-Request-Id"] = request_id
            current.set_attribute("http.response.status_code", response.status)
            return response
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
        request_id_var.reset(token)


async def _answer(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except ApiError as exc:
        response = error_response(exc)
        response.headers.update(getattr(exc, "headers", {}))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = error_response(ApiError(exc.status, code, exc.reason))
    except Exception as exc:
        if database_unavailable(exc):
            # Expected while the database is down or restarting: one line, no traceback.
            log.warning(
                "database_unavailable", method=request.method, path=request.path,
                error=type(exc).__name__, reason=mask_url_credentials(str(exc))[:300],
            )  # fmt: skip
            response = error_response(
                ApiError(503, "database_unavailable", "the database is unavailable, try again shortly")
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        else:
            log.exception("request_failed", method=request.method, path=request.path)
            response = error_response(ApiError(500, "internal_error", "internal server error"))
    elapsed = time.perf_counter() - started
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.observe(
            "peppol_http_request_seconds", "HTTP request latency by route", elapsed,
            route=route, method=request.method, status=f"{response.status // 100}xx",
        )  # fmt: skip
    log.info("request", method=request.method, path=request.path, status=response.status, ms=round(elapsed * 1000, 2))
    return response
