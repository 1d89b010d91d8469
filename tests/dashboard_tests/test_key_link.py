"""The link ``lrsearch demo --serve`` prints opens the study already signed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lrsearch import storage
from lrsearch.cli.serve_cmds import dashboard_link
from lrsearch.search_space import parse_definition
from lrsearch.service import Settings
from tests.dashboard_tests.conftest import dashboard_app, screenshot, serving, wait_rendered

pytestmark = pytest.mark.browser


def test_a_link_with_a_key_signs_in_and_drops_the_key_from_the_address(
    page: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'link.db'}"
    backend = storage.open_backend(url)
    try:
        storage.create_study(backend, parse_definition({"name": "linked", "task": "synthetic"}))
        _, key = storage.create_key(backend, scope="read")
    finally:
        backend.dispose()
    with serving(dashboard_app(Settings(storage=url))) as base:
        link = dashboard_link(base, "linked", key)
        assert link == f"{base}/#/study/linked?key={key}"
        page.goto(link)
        wait_rendered(page, "study")
        assert page.is_hidden("#key-view")
        assert page.evaluate("() => localStorage.getItem('lrsearch.apiKey')") == key
        assert page.evaluate("() => location.hash") == "#/study/linked"
        assert key not in page.evaluate("() => location.href")
        screenshot(page, "dashboard-key-link")
