"""``GET /studies/{name}/trials/{number}/pytorch``: a trial as ready-to-paste PyTorch code.

A real built-in worker trains the trials (synthetic task, sized by the study's
``task_options``); the route's code, exec'd with torch and stepped as its
comments say, must give the learning rates the worker recorded in ``lr_curve``,
epoch by epoch, for every schedule type, with and without a warm-up.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch

from lrsearch import storage
from lrsearch.workers.loop import WorkerOptions, run_worker
from tests.service_tests.conftest import Api
from tests.service_tests.helpers import DriveTrials

N_TRAIN = 96
TASK_OPTIONS = {"n_train": N_TRAIN, "n_val": 32, "n_features": 4, "hidden": 8}
EPOCHS = 6
_DEFERRED = re.compile(r"^# At the start of epoch (\d+): (scheduler = .*)$", re.MULTILINE)


def code_lr_curve(code: str, *, steps_per_epoch: int, values: list[float]) -> list[float]:
    """Run ``code`` as a user would and read the learning rate before each epoch.

    ``values`` are the objective per epoch (what a plateau schedule steps on). A
    schedule that cannot follow a warm-up inside ``SequentialLR`` is built
    where the code's comment says, from the comment's own line.
    """
    namespace: dict[str, Any] = {
        "model": torch.nn.Linear(2, 2),
        "steps_per_epoch": steps_per_epoch,
    }
    exec(code, namespace)
    optimizer = namespace["optimizer"]
    deferred = _DEFERRED.search(code)
    lrs = []
    for epoch, value in enumerate(values):
        if deferred is not None and epoch == int(deferred[1]):
            exec(deferred[2], namespace)
        active = namespace.get("scheduler", namespace.get("warmup"))
        lrs.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch):
            optimizer.step()
            if isinstance(active, torch.optim.lr_scheduler.CyclicLR):
                active.step()
        if isinstance(active, torch.optim.lr_scheduler.ReduceLROnPlateau):
            active.step(value)
        elif not isinstance(active, torch.optim.lr_scheduler.CyclicLR):
            active.step()
    return lrs


def _study_with_every_schedule(api: Api) -> str:
    name = api.create_study(
        budget={"n_trials": 14, "max_epochs": EPOCHS},
        pruner={"type": "none"},
        sampler={"type": "random", "seed": 3},
        task_options=TASK_OPTIONS,
        search_space={"warmup_epochs": {"low": 0, "high": 2}, "batch_size": [16, 32]},
    )["name"]
    run_worker(
        WorkerOptions(
            storage_url=api.backend.url,
            study=name,
            device="cpu",
            idle_exit=1.0,
            poll_interval=0.1,
            install_signal_handlers=False,
        )
    )
    return name


def test_the_code_reproduces_the_workers_learning_rates(api: Api) -> None:
    name = _study_with_every_schedule(api)
    trials = api.get(f"/studies/{name}/trials", params={"limit": 100}).json()["items"]
    assert len(trials) == 14
    schedules, warmed = set(), set()
    for row in trials:
        assert row["state"] == "COMPLETE", row
        detail = api.get(f"/studies/{name}/trials/{row['number']}").json()
        response = api.get(f"/studies/{name}/trials/{row['number']}/pytorch")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["study"], body["number"], body["state"]) == (name, row["number"], "COMPLETE")
        assert body["value"] == pytest.approx(row["value"])
        values = [detail["intermediate_values"][str(e)] for e in range(EPOCHS)]
        steps = math.ceil(N_TRAIN / row["batch_size"])
        lrs = code_lr_curve(body["code"], steps_per_epoch=steps, values=values)
        assert lrs == pytest.approx(detail["lr_curve"], rel=1e-9), (row["schedule"], body["code"])
        schedules.add(row["schedule"])
        if row["warmup_epochs"]:
            warmed.add(row["schedule"])
    # The check above ran on the schedule types the sampler drew, warm-ups included.
    assert len(schedules) >= 5, schedules
    assert warmed, "no trial had a warm-up"


def test_the_definition_with_task_options_round_trips(api: Api) -> None:
    name = api.create_study(task_options={"n_train": 64, "nested": {"a": [1, 2.5, "x"]}})["name"]
    definition = api.get(f"/studies/{name}").json()["definition"]
    assert definition["task_options"] == {"n_train": 64, "nested": {"a": [1, 2.5, "x"]}}


def test_non_finite_task_options_are_a_422_listing_them(api: Api) -> None:
    body = {
        "name": "bad-options",
        "task": "synthetic",
        "task_options": {"x": 1e400, "y": "z" * 5000},  # 1e400 parses as inf
        "budget": {"n_trials": 0},
    }
    text = json.dumps(body).replace('"x": Infinity', '"x": 1e400')
    response = api.post("/studies", content=text, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {tuple(e["loc"]) for e in errors} == {("task_options",), ("budget", "n_trials")}
    (options,) = [e["msg"] for e in errors if e["loc"] == ["task_options"]]
    assert "x: must be a finite number" in options
    assert "y: longer than 4096" in options


def test_unknown_trial_is_404_and_unsampled_trial_is_422(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study()["name"]
    assert api.get(f"/studies/{name}/trials/0/pytorch").status_code == 404
    assert api.get(f"/studies/nope-{name}/trials/0/pytorch").status_code == 404
    # A claimed trial whose worker has not sampled it yet.
    study = storage.load_optuna_study(api.backend, api.record(name))
    assert storage.claim_trial(api.backend, study, worker="w:1") is not None
    response = api.get(f"/studies/{name}/trials/0/pytorch")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["params"]


def test_reading_code_needs_a_key(api: Api) -> None:
    name = api.create_study()["name"]
    assert api.get(f"/studies/{name}/trials/0/pytorch", scope=None).status_code == 401
