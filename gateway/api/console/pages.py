"""Rendering the console's pages: one Jinja environment (autoescaped), the headers every page
carries, and refusals shown as pages rather than JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.api.envelope import ApiError

__all__ = ["STATIC", "ConsoleError", "console_errors", "render", "secure_headers", "when"]

HERE = Path(__file__).parent
STATIC = HERE / "static"

log = structlog.get_logger("gateway.console")


def when(value: datetime | None) -> str:
    """A time as operators read it: UTC, to the second."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every value is escaped unless a template says otherwise (none does)
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["when"] = when

# No inline script or style anywhere: the policy allows only the console's own files.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def secure_headers(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


class ConsoleError(Exception):
    """A refusal the console shows as a page with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def render(request: web.Request, template: str, http_status: int = 200, **context: Any) -> web.Response:
    """A page from ``template`` with ``context`` and what every page shows (the user, the
    navigation, the form token)."""
    from gateway.api.console.extensions import NAV
    from gateway.api.console.session import USER

    user = request.get(USER)
    page = _ENV.get_template(template).render(
        user=user,
        csrf=user.csrf if user is not None else context.pop("csrf", ""),
        nav=[item for item in NAV if user is not None and item.visible(user)],
        path=request.path,
        **context,
    )
    return web.Response(text=page, status=http_status, content_type="text/html", charset="utf-8")


_TITLES = {400: "Bad request", 401: "Sign in", 403: "Not allowed", 404: "Not found", 409: "Not possible now"}


@web.middleware
async def console_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refusals as pages (JSON for the console's own JSON endpoints), with the security headers."""
    try:
        response = await handler(request)
    except ConsoleError as exc:
        response = _refusal(request, exc.status, exc.message)
    except ApiError as exc:
        response = _refusal(request, exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _refusal(request, exc.status, exc.reason)
    return secure_headers(response)


def _refusal(request: web.Request, status: int, message: str) -> web.Response:
    log.info("console_refused", path=request.path, status=status, reason=message)
    if request.path.startswith("/console/api/"):
        return web.json_response({"error": message}, status=status)
    return render(request, "error.html", http_status=status, title=_TITLES.get(status, "Error"), message=message)
