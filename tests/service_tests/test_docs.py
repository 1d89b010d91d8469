"""``/docs`` works offline: the page names only local URLs, and each of them is served."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tests.service_tests.conftest import TestClient

# Every URL the page makes the browser load: attributes and Swagger UI's `url:` option.
_URL_RE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|\burl\s*:\s*["']([^"']+)["']""")


def test_docs_page_references_only_local_urls_and_each_is_served(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = [a or b for a, b in _URL_RE.findall(page.text)]
    # The script, the stylesheet, the icon and the OpenAPI document at least.
    assert len(urls) >= 4, urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme, f"{url} is not local"
        assert not parts.netloc, f"{url} is not local"
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.content, url
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts
    assert b"SwaggerUIBundle" in client.get(scripts[0]).content


def test_redoc_from_a_cdn_is_not_served(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404
