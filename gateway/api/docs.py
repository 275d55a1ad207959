"""Interactive API documentation at ``GET /v1/docs``: Swagger UI reading ``/v1/openapi.json``.

The viewer's files come from the ``swagger-ui-py`` package (Swagger UI 5, which reads OpenAPI
3.1) and are served from there: the page loads nothing from another host, so it works offline and
behind a strict egress policy. Only the few files the page uses are served, by name.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from aiohttp import web

from gateway.api.envelope import ApiError

__all__ = ["DOCS_PREFIX", "add_docs_routes"]

DOCS_PREFIX = "/v1/docs"

# name -> content type: everything the page needs, nothing else of the package
_ASSETS = {
    "swagger-ui.css": "text/css",
    "index.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

# Relative URLs, so the page also works below a path prefix added by a proxy.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Peppol gateway API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="stylesheet" href="docs/index.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/swagger-ui-standalone-preset.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""

_INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
});
"""


@cache
def _static_dir() -> Path | None:
    """Where the installed package keeps Swagger UI (found without importing it)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def docs_page(request: web.Request) -> web.Response:
    if _static_dir() is None:
        raise ApiError(503, "docs_unavailable", "the swagger-ui-py package is not installed")
    return web.Response(text=_PAGE, content_type="text/html", charset="utf-8")


async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if name == "init.js":
        return web.Response(text=_INIT, content_type="text/javascript", charset="utf-8")
    directory = _static_dir()
    if name not in _ASSETS or directory is None or not (directory / name).is_file():
        raise ApiError(404, "not_found", "no such file")
    return web.FileResponse(
        directory / name, headers={"Content-Type": _ASSETS[name], "Cache-Control": "public, max-age=3600"}
    )


def add_docs_routes(app: web.Application) -> None:
    app.router.add_get(DOCS_PREFIX, docs_page)
    app.router.add_get(DOCS_PREFIX + "/{asset}", docs_asset)
