"""The web dashboard: one HTML page, its script and stylesheet, and plotly.js.

Everything comes from installed packages, so the dashboard works offline and
needs no build step: our files from ``service/static/``, and plotly.js
from the ``plotly`` Python package, which ships ``plotly.min.js`` (found at
request time, never copied into the repository). The page itself holds no
data; it reads the REST API with the API key the user enters.

Our files are sent with ``Cache-Control: no-cache`` and an ``ETag`` (a hash of
their content): the browser asks again on every visit, so that a new release is
picked up at once, and is answered ``304 Not Modified`` with no body while its
copy is still the current one.
"""

from __future__ import annotations

import gzip
import hashlib
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import FileResponse, Response

from lrsearch.service.errors import ServiceError

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "views_trials.js": "text/javascript; charset=utf-8",
    "views_analysis.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# The page stores an API key in localStorage: allow no script but our own, and
# no other origin at all. Plotly injects <style> elements, hence the inline styles.
_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class DashboardAssetMissingError(ServiceError):
    """A file the dashboard needs is not installed (a broken installation)."""


def _plotly_js() -> Path:
    path = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise DashboardAssetMissingError(f"plotly.min.js not found at {path}")
    return path


def _plotly_version() -> str:
    try:
        return version("plotly")
    except PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=32)
def _content_etag(path: Path, mtime_ns: int, size: int) -> str:
    # Once per version of each file: a new mtime or size is a new key.
    return '"' + hashlib.sha256(path.read_bytes()).hexdigest()[:32] + '"'


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, as RFC 9110
    asks for this header) or is ``*``."""
    for tag in (if_none_match or "").split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def _static_file(
    path: Path, media_type: str, headers: dict[str, str], if_none_match: str | None
) -> Response:
    """``path`` with its content's ETag, or ``304 Not Modified`` if the browser has it."""
    if not path.is_file():
        raise DashboardAssetMissingError(f"{path.name} not found in {path.parent}")
    stat = path.stat()
    etag = _content_etag(path, stat.st_mtime_ns, stat.st_size)
    headers = {**headers, "ETag": etag}
    if _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


@router.get("/")
def index(if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """The single page: studies, a study, a trial (routes after ``#``)."""
    media_type = "text/html; charset=utf-8"
    return _static_file(STATIC_DIR / "index.html", media_type, _PAGE_HEADERS, if_none_match)


@lru_cache(maxsize=2)
def _gzipped(path: Path, mtime_ns: int) -> bytes:
    # Once per installed file (4.8 MB -> 1.4 MB), then kept in memory.
    return gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)


def _accepts_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            weight = params.replace(" ", "").lower().removeprefix("q=")
            try:
                return not weight or float(weight) > 0  # "gzip;q=0" refuses it
            except ValueError:
                return False
    return False


@router.get("/static/vendor/plotly.min.js")
def plotly_js(accept_encoding: Annotated[str | None, Header()] = None) -> Response:
    """plotly.js from the installed ``plotly`` package, gzipped if the browser takes it;
    cached a day by the browser."""
    path = _plotly_js()
    media_type = "text/javascript; charset=utf-8"
    headers = {
        "Cache-Control": "public, max-age=86400",
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "X-Plotly-Version": _plotly_version(),
    }
    if _accepts_gzip(accept_encoding):
        body = _gzipped(path, path.stat().st_mtime_ns)
        headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=media_type, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


def _asset_route(name: str, media_type: str) -> None:
    def endpoint(if_none_match: Annotated[str | None, Header()] = None) -> Response:
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return _static_file(STATIC_DIR / name, media_type, headers, if_none_match)

    endpoint.__doc__ = f"The dashboard's {name}."
    router.add_api_route(f"/static/{name}", endpoint, methods=["GET"], name=f"static_{name}")


# One route per file, so that any other name is the router's own 404.
for _name, _media_type in _ASSETS.items():
    _asset_route(_name, _media_type)
