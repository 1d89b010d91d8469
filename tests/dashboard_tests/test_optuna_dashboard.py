"""optuna-dashboard works on lrsearch's storage: it is a standard Optuna RDB storage.

optuna-dashboard's own WSGI app is served over the session's database by a
real HTTP server (wsgiref, in a thread); its JSON API must list our study and
every one of its trials with their states, params and values.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import optuna
import optuna_dashboard
import pytest

from lrsearch import storage
from tests.dashboard_tests.conftest import DashboardSite


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def optuna_dashboard_url(site: DashboardSite) -> Iterator[str]:
    optuna_storage = optuna.storages.RDBStorage(site.storage_url)
    app = optuna_dashboard.wsgi(optuna_storage)
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="optuna-dashboard", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        optuna_storage.engine.dispose()


def test_optuna_dashboard_lists_the_study_and_its_trials(
    site: DashboardSite, optuna_dashboard_url: str
) -> None:
    name = site.studies["done"]
    record = storage.get_study(site.backend, name)
    studies = httpx.get(f"{optuna_dashboard_url}/api/studies", timeout=30)
    assert studies.status_code == 200, studies.text
    listed = {s["study_name"]: s for s in studies.json()["study_summaries"]}
    assert set(site.studies.values()) <= set(listed)
    assert listed[name]["study_id"] == record.study_id
    assert listed[name]["directions"] == ["maximize"]

    detail = httpx.get(f"{optuna_dashboard_url}/api/studies/{record.study_id}", timeout=30)
    assert detail.status_code == 200, detail.text
    trials = detail.json()["trials"]
    ours = {t["number"]: t for t in site.api(f"/studies/{name}/trials?limit=1000")["items"]}
    assert sorted(t["number"] for t in trials) == sorted(ours) == list(range(record.n_trials))
    for trial in trials:
        mine = ours[trial["number"]]
        assert trial["state"].upper() == mine["state"]
        params = {p["name"]: p["param_external_value"] for p in trial["params"]}
        assert params["schedule"] == mine["schedule"]
        # optuna-dashboard shows external values as strings.
        assert float(params["learning_rate"]) == pytest.approx(mine["learning_rate"])
        if mine["state"] == "COMPLETE":
            assert trial["values"] == [pytest.approx(mine["value"])]
        assert len(trial["intermediate_values"]) == mine["epochs_run"]
    best = detail.json()["best_trials"]
    assert [t["number"] for t in best] == [site.api(f"/studies/{name}/best")["trial"]["number"]]
