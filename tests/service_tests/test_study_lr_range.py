"""``GET /studies/{name}`` returns an ``auto`` study's LR range test (``lr_range``).

The dashboard draws the curve and the chosen bounds from it; every other study
has ``lr_range: null``. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import math

import torch

from lrsearch import storage
from lrsearch.workers.lr_range import resolve_auto_learning_rate
from lrsearch.workers.tasks import get_task
from tests.service_tests.conftest import Api


def test_an_auto_study_returns_its_range_test_and_others_none(api: Api) -> None:
    auto = api.create_study(search_space={"learning_rate": "auto"})["name"]
    plain = api.create_study()["name"]
    assert api.get(f"/studies/{auto}").json()["lr_range"] is None  # not run yet

    # What the first worker does before sampling: the real range test, stored with the study.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record = api.record(auto)
        resolve_auto_learning_rate(api.backend, record, get_task("synthetic", {}))
    finally:
        torch.set_num_threads(threads)
    stored = storage.stored_lr_range(api.backend, record.study_id)
    assert stored is not None

    body = api.get(f"/studies/{auto}").json()["lr_range"]
    assert body["low"] == stored["low"]
    assert body["high"] == stored["high"]
    assert body["lrs"] == stored["lrs"]
    assert body["losses"] == [x if math.isfinite(x) else None for x in stored["losses"]]
    assert body["batches"] == len(body["lrs"]) > 2
    assert api.get(f"/studies/{plain}").json()["lr_range"] is None


def test_non_finite_losses_come_back_as_null_not_a_500(api: Api) -> None:
    # A diverged range test may end on an infinite or NaN loss; JSON has neither.
    name = api.create_study(search_space={"learning_rate": "auto"})["name"]
    record = api.record(name)
    curve = {
        "low": 1e-3,
        "high": 1e-1,
        "steepest": 1e-2,
        "diverged": True,
        "batches": 4,
        "lrs": [1e-3, 1e-2, 1e-1, 1.0],
        "losses": [2.0, 1.0, 0.5, math.inf],
        "settings": {},
    }
    storage.store_lr_range(api.backend, record.study_id, curve)
    response = api.get(f"/studies/{name}")
    assert response.status_code == 200, response.text
    assert response.json()["lr_range"]["losses"] == [2.0, 1.0, 0.5, None]
