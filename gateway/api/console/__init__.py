"""The operator console: server-rendered pages under ``/console/`` for operators and, limited
to their own data, for a company's users (see :mod:`gateway.api.console.session`)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.console.companies import add_company_routes
from gateway.api.console.duties import add_duty_routes
from gateway.api.console.health import add_health_routes
from gateway.api.console.pages import STATIC, console_errors
from gateway.api.console.session import add_session_routes, session_middleware
from gateway.api.console.trace import add_trace_routes

__all__ = ["add_console"]


def add_console(app: web.Application) -> None:
    """Mount the console on ``app`` at ``/console/`` (a sub-application with its own middleware:
    refusals as pages, sessions, forgery checks)."""
    console = web.Application(middlewares=[console_errors, session_middleware])
    add_session_routes(console)
    add_trace_routes(console)
    add_company_routes(console)
    add_health_routes(console)
    add_duty_routes(console)
    console.router.add_static("/static/", STATIC)
    app.add_subapp("/console/", console)
    app.router.add_get("/console", _to_console)


async def _to_console(request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": "/console/"})
