"""The OpenAPI document matches the implementation: the same operations."""

from __future__ import annotations

from gateway.api.app import create_app
from gateway.api.openapi import openapi_document
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from tests.support.gateways import in_process_gateway, new_database


async def test_documented_operations_are_the_implemented_ones(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    async with in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as gw:
        app = create_app(gw.settings, gw.pool, gw.runtime)
        implemented = {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method not in ("HEAD", "*")
            and route.resource is not None
            and (route.resource.canonical.startswith("/v1") or route.resource.canonical.startswith("/oauth2"))
        }
        documented = {(method.upper(), path) for path, ops in openapi_document()["paths"].items() for method in ops}
        assert documented == implemented
