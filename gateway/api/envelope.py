"""The one JSON envelope every API answer uses.

Success: ``{"success": true, "data": ..., "meta": {...}}``.
Failure: ``{"success": false, "error": {"code": ..., "message": ...}, "meta": {...}}`` where
``code`` is stable and machine-readable and ``message`` is for people.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.core.errors import GatewayError
from gateway.core.requestid import current_request_id

__all__ = ["ApiError", "data_body", "error_response", "ok"]


class ApiError(GatewayError):
    """An error answered to the caller with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def _meta() -> dict[str, Any]:
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": current_request_id(),
    }


def data_body(data: Any, status: int = 200, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The envelope of a data answer; ``success`` is false for a 5xx status that still carries data.
    ``meta`` adds to the usual fields (a list's ``next_cursor``, say)."""
    return {"success": status < 500, "data": data, "meta": {**_meta(), **(meta or {})}}


def ok(data: Any, status: int = 200, meta: dict[str, Any] | None = None) -> web.Response:
    """A data answer in the envelope."""
    return web.json_response(data_body(data, status, meta), status=status)


def error_response(error: ApiError) -> web.Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return web.json_response({"success": False, "error": body, "meta": _meta()}, status=error.status)
