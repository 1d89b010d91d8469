"""The studies page: one request per page of studies, and a failed study says why.

Its own small storage (trials driven through storage, no training), so it does
not depend on the session's worker-run studies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lrsearch import storage
from lrsearch.search_space import parse_definition
from lrsearch.service import Settings
from tests.dashboard_tests.conftest import dashboard_app, serving, wait_rendered
from tests.service_tests.helpers import drive_trials

pytestmark = pytest.mark.browser

REASON = "3 trials in a row failed with TaskDataError"


def test_studies_page_reads_only_the_list_and_shows_why_a_study_failed(
    page: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'list.db'}"
    backend = storage.open_backend(url)
    try:
        _, key = storage.create_key(backend, scope="read", tenant="list-tenant")
        records = {}
        for name in ("list-ok", "list-failed"):
            definition = parse_definition(
                {"name": name, "task": "synthetic", "budget": {"n_trials": 4, "max_epochs": 2}}
            )
            records[name] = storage.create_study(backend, definition, tenant="list-tenant")
        drive_trials(backend, records["list-ok"], outcomes=["COMPLETE", "PRUNED"])
        drive_trials(backend, records["list-failed"], outcomes=["FAIL"])
        with backend.engine.begin() as conn:
            assert storage.mark_study_failed(conn, records["list-failed"].study_id, REASON)
    finally:
        backend.dispose()

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    with serving(dashboard_app(Settings(storage=url))) as site:
        page.goto(site + "/")
        page.fill("#key-input", key)
        page.click("#key-form button[type=submit]")
        wait_rendered(page, "studies")
        failed = page.locator("#studies-table tr[data-study=list-failed]")
        assert failed.locator(".badge").inner_text().lower() == "failed"
        assert failed.locator("[data-field=state-reason]").inner_text() == REASON
        ok = page.locator("#studies-table tr[data-study=list-ok]")
        assert ok.locator("td[data-field=progress]").inner_text() == "2/4"
        assert ok.locator("[data-field=state-reason]").count() == 0
        page.wait_for_timeout(3500)  # one live refresh
        page.close()  # before its server stops: no poll may hit a closed port
    api_paths = [u.split("/api/v1", 1)[1] for u in requests if "/api/v1/" in u]
    # The list and who the key is; never one request per study.
    assert not [p for p in api_paths if p.startswith("/studies/")], api_paths
    assert sum(p.startswith("/studies?") for p in api_paths) >= 2
