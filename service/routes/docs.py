"""``/docs``: Swagger UI, served from an installed package so that it works offline.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN, and is blank without
internet access. Here the page is FastAPI's, but its script, stylesheet and
icon come from the ``swagger-ui-bundle-v2`` package (``swagger_ui_bundle``),
like the dashboard's plotly.js; ReDoc, which has no such package, is off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from lrsearch.service.errors import ServiceError

router = APIRouter(include_in_schema=False)

DOCS_PATH = "/docs"
ASSET_PREFIX = "/static/swagger-ui"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


class DocsAssetMissingError(ServiceError):
    """A Swagger UI file is not installed (a broken installation)."""


def _asset(name: str) -> Path:
    path = Path(str(swagger_ui_path)) / name
    if not path.is_file():
        raise DocsAssetMissingError(f"{name} not found at {path}")
    return path


@router.get(DOCS_PATH)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over this app's OpenAPI document; every URL on the page is local."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{ASSET_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSET_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{ASSET_PREFIX}/favicon-32x32.png",
        # "Try it out" sends the key from the Authorize dialog; keep it across reloads.
        swagger_ui_parameters={"persistAuthorization": True},
    )


def _asset_route(name: str, media_type: str) -> None:
    def endpoint() -> FileResponse:
        headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return FileResponse(_asset(name), media_type=media_type, headers=headers)

    endpoint.__doc__ = f"Swagger UI's {name}, from the installed package."
    router.add_api_route(
        f"{ASSET_PREFIX}/{name}", endpoint, methods=["GET"], name=f"swagger_ui_{name}"
    )


# One route per file, so that any other name is the router's own 404.
for _name, _media_type in _ASSETS.items():
    _asset_route(_name, _media_type)
