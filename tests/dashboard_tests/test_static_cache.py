"""The dashboard's own files over HTTP: an ETag, ``304 Not Modified`` while the browser's
copy is current, the new file at once after it changed; and a page load with no 404."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lrsearch.service.routes import dashboard
from tests.dashboard_tests.conftest import DashboardSite, enter_key, wait_rendered

CHARTS_MS = 60_000  # plotly.js on a loaded machine
FILES = ["/", "/static/app.js", "/static/charts.js", "/static/views_trials.js"]
FILES += ["/static/views_analysis.js", "/static/app.css"]


@pytest.fixture
def static_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dashboard serving a copy of its files, which a test may change."""
    folder = tmp_path / "static"
    shutil.copytree(dashboard.STATIC_DIR, folder)
    monkeypatch.setattr(dashboard, "STATIC_DIR", folder)
    return folder


@pytest.fixture
def client(static_copy: Path) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(dashboard.router)
    with TestClient(app) as http:
        yield http


@pytest.mark.parametrize("path", FILES)
def test_etag_then_304_with_no_body(client: TestClient, path: str) -> None:
    first = client.get(path)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert len(etag) > 10
    assert first.headers["cache-control"] == "no-cache"  # asked again on every visit
    assert client.get(path).headers["etag"] == etag  # stable while the file is unchanged

    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "no-cache"
    # As browsers send it after a weak validator, and in a list of several.
    assert client.get(path, headers={"If-None-Match": f"W/{etag}"}).status_code == 304
    assert client.get(path, headers={"If-None-Match": f'"other", {etag}'}).status_code == 304
    assert client.get(path, headers={"If-None-Match": "*"}).status_code == 304


@pytest.mark.parametrize("path", FILES)
def test_another_etag_gets_the_whole_file(client: TestClient, path: str) -> None:
    first = client.get(path)
    for stale in ('"0123456789abcdef"', "", "garbage", first.headers["etag"].strip('"')):
        response = client.get(path, headers={"If-None-Match": stale})
        assert response.status_code == 200, stale
        assert response.content == first.content


def test_a_changed_file_is_sent_again_at_once(client: TestClient, static_copy: Path) -> None:
    old = client.get("/static/app.css")
    assert (
        client.get("/static/app.css", headers={"If-None-Match": old.headers["etag"]}).status_code
        == 304
    )
    css = static_copy / "app.css"
    css.write_text(css.read_text() + "\n.released { color: red; }\n")

    new = client.get("/static/app.css", headers={"If-None-Match": old.headers["etag"]})
    assert new.status_code == 200
    assert new.content.endswith(b".released { color: red; }\n")
    assert new.headers["etag"] != old.headers["etag"]
    assert (
        client.get("/static/app.css", headers={"If-None-Match": new.headers["etag"]}).status_code
        == 304
    )


def test_same_size_same_second_change_is_seen(client: TestClient, static_copy: Path) -> None:
    # The ETag is the content's hash: an edit keeping the size is another version too.
    page = static_copy / "index.html"
    old = client.get("/")
    text = page.read_text()
    page.write_text(text.replace("<title>lrsearch</title>", "<title>LRSEARCH</title>"))
    new = client.get("/", headers={"If-None-Match": old.headers["etag"]})
    assert new.status_code == 200
    assert b"<title>LRSEARCH</title>" in new.content
    assert new.headers["content-security-policy"] == old.headers["content-security-policy"]


def test_index_has_an_inline_favicon(client: TestClient) -> None:
    html = client.get("/").text
    assert '<link rel="icon" href="data:image/svg+xml,' in html


@pytest.mark.browser
def test_a_page_load_has_no_404(site: DashboardSite, page: Any) -> None:
    # 401 is expected once: whoami asked before the key is entered.
    failed: list[str] = []
    ours: list[tuple[int, str]] = []  # the page and its files: (status, path)

    def seen(response: Any) -> None:
        path = response.url.removeprefix(site.url).split("#")[0]
        if path == "/" or (path.startswith("/static/") and "/vendor/" not in path):
            ours.append((response.status, path))
        if response.status == 404 or response.status >= 500:
            failed.append(f"{response.status} {response.url}")

    page.on("response", seen)
    enter_key(page, site, site.keys["read"], f"/study/{site.studies['done']}")
    page.wait_for_selector("body[data-rendered=study]", timeout=CHARTS_MS)
    assert sorted(set(ours)) == [(200, p) for p in sorted(FILES)]
    ours.clear()
    page.reload()  # the browser asks again (no-cache) and keeps its copies
    page.wait_for_selector("body[data-rendered=study]", timeout=CHARTS_MS)
    # Chromium reports a revalidated copy with the status it was first stored with.
    assert sorted({p for _, p in ours}) == sorted(FILES)
    assert {status for status, _ in ours} <= {200, 304}
    page.goto(site.page_url("/"))
    wait_rendered(page, "studies")
    assert failed == []
