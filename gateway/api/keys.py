"""Keys of the shared objects the application holds for its handlers."""

from __future__ import annotations

from aiohttp import web

from gateway.runtime import Services

__all__ = ["SERVICES"]

# The background services, present once the application has started (gateway.runtime.start_services).
SERVICES = web.AppKey("services", Services)
