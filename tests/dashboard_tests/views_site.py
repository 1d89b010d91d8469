"""A storage of its own for the trial-table and analysis views, served for the browser.

Trials are driven through storage (no training, see ``tests/service_tests/helpers``),
so a study of 70 trials with complete, pruned and failed ones (two different
error messages) takes well under a second. ``views-running`` has two complete
trials (tests start running ones with :func:`start_running`); ``views-empty``
has no trial at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition, sample_config
from lrsearch.service import Settings
from tests.dashboard_tests.conftest import API, dashboard_app, serving
from tests.service_tests.helpers import drive_trials, objective

BIG = "views-big"
RUNNING = "views-running"
EMPTY = "views-empty"
TENANT = "views-tenant"
OTHER_ERROR = "CUDA error: device-side assert triggered"
# 70 trials: every 7th fails (the 6th of them with OTHER_ERROR), every 3rd is pruned.
OUTCOMES = ["FAIL" if i % 7 == 6 else "PRUNED" if i % 3 == 2 else "COMPLETE" for i in range(70)]


@dataclass(frozen=True)
class ViewsSite:
    url: str
    backend: storage.Backend
    keys: dict[str, str]  # read, submit

    def get(self, path: str, key: str = "read", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        return httpx.get(self.url + API + path, headers=headers, params=params)

    def put(self, path: str, body: Any, key: str = "submit") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        return httpx.put(self.url + API + path, headers=headers, json=body)

    def record(self, name: str) -> storage.StudyRecord:
        return storage.get_study(self.backend, name, tenant=TENANT)


def _create(backend: storage.Backend, name: str, n_trials: int) -> storage.StudyRecord:
    definition = parse_definition(
        {
            "name": name,
            "task": "synthetic",
            "budget": {"n_trials": n_trials, "max_epochs": 3},
            "sampler": {"type": "random", "seed": 3},
        }
    )
    return storage.create_study(backend, definition, tenant=TENANT)


def _fail_one(backend: storage.Backend, record: storage.StudyRecord, message: str) -> None:
    study = storage.load_optuna_study(backend, record)
    trial = storage.claim_trial(backend, study, worker="other-host:2", device="cpu")
    assert trial is not None
    sample_config(trial, record.definition)
    storage.finish_trial(
        backend, study, trial, state=TrialState.FAIL, value=None, user_attrs={"error": message}
    )


def start_running(backend: storage.Backend, record: storage.StudyRecord, epochs: int) -> list[Any]:
    """Claim two trials of ``record`` and report ``epochs`` epochs of each; they stay RUNNING."""
    study = storage.load_optuna_study(backend, record)
    trials = []
    for worker in ("gpu-host-a:11", "gpu-host-b:12"):
        trial = storage.claim_trial(backend, study, worker=worker, device="cpu")
        assert trial is not None
        config = sample_config(trial, record.definition)
        for epoch in range(epochs):
            trial.report(objective(config, epoch), epoch)
        trials.append((trial, config))
    return trials


@contextmanager
def views_site(tmp_path: Path) -> Iterator[ViewsSite]:
    """Build the storage and serve it (with the dashboard) until the block ends."""
    url = f"sqlite:///{tmp_path / 'views.db'}"
    backend = storage.open_backend(url)
    try:
        keys = {
            "read": storage.create_key(backend, scope="read", tenant=TENANT)[1],
            "submit": storage.create_key(backend, scope="submit", tenant=TENANT)[1],
        }
        big = _create(backend, BIG, len(OUTCOMES))
        drive_trials(backend, big, outcomes=OUTCOMES[:41])
        _fail_one(backend, big, OTHER_ERROR)  # the 6th failure: OUTCOMES[41]
        drive_trials(backend, big, outcomes=OUTCOMES[42:])
        running = _create(backend, RUNNING, 6)
        drive_trials(backend, running, outcomes=["COMPLETE", "COMPLETE"])
        _create(backend, EMPTY, 4)
        with serving(dashboard_app(Settings(storage=url))) as served:
            yield ViewsSite(url=served, backend=backend, keys=keys)
    finally:
        backend.dispose()
