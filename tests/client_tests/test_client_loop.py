"""The Python client's trial loop against a real ``lrsearch serve`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from lrsearch import Client, storage
from lrsearch.client import LEFT_THE_LOOP, ApiError
from tests.client_tests.served import Served


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Clients a test opened; closed after it (their sockets would leak otherwise)."""
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


def _create(served: Served, clients: list[Client], **fields: Any) -> tuple[Client, str]:
    client = Client(served.url, served.key)
    clients.append(client)
    name = f"cl-{uuid.uuid4().hex[:10]}"
    definition: dict[str, Any] = {
        "name": name,
        "task": "external",
        "objective": {"metric": "score", "direction": "maximize"},
        "budget": {"n_trials": 3, "max_epochs": 3},
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        **fields,
    }
    client.create_study(definition)
    return client, name


def test_loop_runs_the_budget_and_completes_with_the_last_value(
    served: Served, clients: list[Client]
) -> None:
    client, name = _create(served, clients)
    study = client.study(name)
    seen: list[tuple[int, list[int]]] = []
    for trial in study.trials():
        epochs = []
        for epoch in trial.epochs():
            epochs.append(epoch)
            assert trial.report(0.1 * (epoch + 1) + trial.number, epoch) is False
        seen.append((trial.number, epochs))
    assert seen == [(0, [0, 1, 2]), (1, [0, 1, 2]), (2, [0, 1, 2])]
    rows = study.trial_rows()
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert [r["value"] for r in rows] == pytest.approx([0.3, 1.3, 2.3])
    assert study.best()["number"] == 2  # type: ignore[index]
    info = study.info()
    assert info["state"] == "finished"
    assert info["finished"] == 3


def test_trial_attributes_and_torch_helpers(served: Served, clients: list[Client]) -> None:
    client, name = _create(
        served,
        clients,
        budget={"n_trials": 1, "max_epochs": 4},
        search_space={
            "schedules": ["cyclic"],
            "weight_init": ["orthogonal"],
            "warmup_epochs": 0,
            # A full half cycle within the epochs, so the peak is reached.
            "schedule_params": {
                "cyclic": {"step_size": {"low": 1, "high": 2}, "mode": {"choices": ["triangular"]}}
            },
        },
    )
    for trial in client.study(name).trials():
        assert trial.schedule_type == "cyclic"
        assert trial.params["learning_rate"] == trial.learning_rate
        assert trial.batch_size in (32, 64, 128, 256)
        assert 0.0 <= trial.dropout <= 0.5
        model = nn.Sequential(nn.Linear(4, 4, bias=True))
        trial.init_weights(model)
        weight = model[0].weight.detach()
        assert torch.allclose(weight @ weight.T, torch.eye(4), atol=1e-5)  # orthogonal
        assert torch.count_nonzero(model[0].bias) == 0
        optimizer = trial.optimizer(model.parameters())
        schedule = trial.schedule(optimizer, steps_per_epoch=5)
        lrs = []
        for epoch in trial.epochs():
            for _ in range(5):
                lrs.append(optimizer.param_groups[0]["lr"])
                optimizer.step()
                schedule.step_batch()
            trial.report(1.0, epoch)
            schedule.step_epoch(1.0)
        # The absolute config the service handed out is the LR the schedule really reaches.
        max_lr = trial.config["schedule"]["max_lr"]
        assert max(lrs) == pytest.approx(max_lr, rel=1e-6)
        assert min(lrs) == pytest.approx(trial.learning_rate, rel=1e-6)
    detail = client.study(name).trial_rows()[0]
    assert detail["state"] == "COMPLETE"


def test_lr_curve_is_recorded_from_the_optimizer(served: Served, clients: list[Client]) -> None:
    client, name = _create(
        served,
        clients,
        budget={"n_trials": 1, "max_epochs": 3},
        search_space={"schedules": ["exponential"], "warmup_epochs": 0},
    )
    study = client.study(name)
    expected = []
    for trial in study.trials():
        model = nn.Linear(2, 2)
        optimizer = trial.optimizer(model.parameters())
        schedule = trial.schedule(optimizer, steps_per_epoch=1)
        for epoch in trial.epochs():
            expected.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            trial.report(0.5, epoch)
            schedule.step_epoch(0.5)
    detail = client._http.json("GET", f"/studies/{name}/trials/0")
    assert detail["lr_curve"] == pytest.approx(expected)
    assert expected[1] < expected[0]  # the exponential decay happened


def test_prune_ends_the_epochs(served: Served, clients: list[Client]) -> None:
    client, name = _create(
        served,
        clients,
        budget={"n_trials": 6, "max_epochs": 3},
        # Plain median: a random warm-up must not decide when trial 5 is judged.
        pruner={"type": "median", "min_epochs": 1, "schedule_aware": False},
    )
    ran: dict[int, list[int]] = {}
    for trial in client.study(name).trials():
        ran[trial.number] = []
        for epoch in trial.epochs():
            ran[trial.number].append(epoch)
            trial.report(0.9 if trial.number < 5 else 0.1, epoch)
    # Judged once the pruner's warm-up is over, then stopped before the budget.
    assert ran[5] == list(range(len(ran[5]))), ran
    assert len(ran[5]) < 3, ran
    assert all(ran[n] == [0, 1, 2] for n in range(5)), ran
    assert [r["state"] for r in client.study(name).trial_rows()][-1] == "PRUNED"


def test_exception_fails_the_trial_and_propagates(served: Served, clients: list[Client]) -> None:
    client, name = _create(served, clients, budget={"n_trials": 2, "max_epochs": 2})
    study = client.study(name)

    def train() -> None:
        for trial in study.trials():
            for epoch in trial.epochs():
                trial.report(0.5, epoch)
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        train()
    rows = study.trial_rows()
    assert [(r["state"], r["error"]) for r in rows] == [("FAIL", LEFT_THE_LOOP)]
    # The next loop goes on with the rest of the budget; the failed trial is not retried.
    assert [t.number for t in study.trials()] == [1]


def test_nan_report_fails_as_diverged(served: Served, clients: list[Client]) -> None:
    client, name = _create(served, clients, budget={"n_trials": 1, "max_epochs": 3})
    epochs = []
    for trial in client.study(name).trials():
        for epoch in trial.epochs():
            epochs.append(epoch)
            trial.report(float("nan"), epoch)
    assert epochs == [0]
    row = client.study(name).trial_rows()[0]
    assert row["state"] == "FAIL"
    assert row["error"].startswith("diverged")


def test_results_for_notebooks(served: Served, clients: list[Client]) -> None:
    client, name = _create(served, clients, budget={"n_trials": 2, "max_epochs": 1})
    study = client.study(name)
    for trial in study.trials():
        for epoch in trial.epochs():
            trial.report(trial.learning_rate, epoch)
    table = study.trials_table()
    rows = table.to_dict("records") if hasattr(table, "to_dict") else table
    assert len(rows) == 2
    assert {"number", "state", "value", "schedule", "learning_rate", "batch_size"} <= set(rows[0])
    assert all(r["value"] == pytest.approx(r["learning_rate"]) for r in rows)
    schedules = study.schedules()
    assert sum(s["n_complete"] for s in schedules) == 2


def test_unknown_study_and_bad_key_raise_api_errors(served: Served, clients: list[Client]) -> None:
    good, bad = Client(served.url, served.key), Client(served.url, "lrs_not_a_key")
    clients += [good, bad]
    with pytest.raises(ApiError) as missing:
        next(good.study("no-such-study").trials())
    assert missing.value.status == 404
    with pytest.raises(ApiError) as denied:
        bad.study("x").best()
    assert denied.value.status == 401


def test_a_lost_trial_is_abandoned_and_the_loop_moves_on(
    served: Served, clients: list[Client]
) -> None:
    client, name = _create(served, clients, budget={"n_trials": 1, "max_epochs": 3})
    backend = storage.open_backend(served.storage_url)
    ran: list[tuple[int, int]] = []
    try:
        for trial in client.study(name).trials():
            for epoch in trial.epochs():
                ran.append((trial.number, epoch))
                if trial.number == 0 and epoch == 1:
                    # As if this client had been silent for a grace period.
                    storage.sweep_stale_trials(backend, grace_s=0.0, study=name)
                    assert trial.report(0.5, epoch) is True
                    assert trial.lost.is_set()
                else:
                    trial.report(0.5, epoch)
    finally:
        backend.dispose()
    # Trial 0 stopped at its lost epoch; its retry (trial 1) ran in full.
    assert ran == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    rows = client.study(name).trial_rows()
    assert [(r["state"], r["retry_of"]) for r in rows] == [("FAIL", None), ("COMPLETE", 0)]
