"""The Transformers integration on a real ``Trainer`` against a real ``lrsearch serve``.

Skipped when ``transformers`` is not installed (it is an optional extra).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lrsearch.client import Client, Trial
from tests.client_tests.served import Served
from tests.client_tests.worker_lrs import worker_lrs

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from lrsearch.integrations.transformers import (  # noqa: E402
    LrsearchCallback,
    TrialLRScheduler,
    trial_optimizers,
)

N_TRAIN, STEPS = 40, 4  # batch size 10: four optimizer steps per epoch
# Short periods, so that every epoch of the four changes the learning rate.
SHORT = {
    "step": {"step_size": {"low": 1, "high": 2}},
    "cyclic": {"step_size": {"low": 1, "high": 2}},
    "plateau": {"patience": {"low": 0, "high": 1}},
}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.linear(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def _data(n: int, seed: int) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    return [{"x": x[i], "labels": int(x[i].sum() > 0)} for i in range(n)]


def _accuracy(pred: Any) -> dict[str, float]:
    return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}


def _create(client: Client, schedule: str, *, n_trials: int = 1, **extra: Any) -> str:
    name = f"hf-{uuid.uuid4().hex[:10]}"
    client.create_study(
        {
            "name": name,
            "task": "external",
            "objective": {"metric": "accuracy", "direction": "maximize"},
            "budget": {"n_trials": n_trials, "max_epochs": 4},
            "sampler": {"type": "random", "seed": 3},
            "pruner": {"type": "none"},
            "search_space": {
                "schedules": [schedule],
                "batch_size": [10],
                "warmup_epochs": 1,
                "learning_rate": {"low": 0.01, "high": 0.1, "log": True},
                "schedule_params": {schedule: SHORT[schedule]} if schedule in SHORT else {},
            },
            **extra,
        }
    )
    return name


def _train(
    trial: Trial, tmp: str, compute_metrics: Any = _accuracy, steps_per_epoch: int = STEPS
) -> list[float]:
    """Fit with the integration; the LR of every optimizer step, read as the step runs."""
    torch.manual_seed(0)
    model = _Net()
    optimizer, scheduler = trial_optimizers(trial, model, steps_per_epoch=steps_per_epoch)
    used: list[float] = []
    optimizer.register_step_pre_hook(lambda opt, *_: used.append(opt.param_groups[0]["lr"]))
    args = transformers.TrainingArguments(
        output_dir=tmp,
        num_train_epochs=trial.max_epochs,
        per_device_train_batch_size=trial.batch_size,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=trial.number,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=_data(N_TRAIN, 0),
        eval_dataset=_data(20, 1),
        compute_metrics=compute_metrics,
        optimizers=(optimizer, scheduler),
        callbacks=[LrsearchCallback(trial)],
    )
    assert isinstance(trainer.lr_scheduler, TrialLRScheduler)
    trainer.train()
    return used


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["step", "cosine", "cyclic", "plateau"])
def test_trainer_uses_the_learning_rates_of_a_builtin_worker(
    served: Served, tmp_path: Any, schedule: str
) -> None:
    with Client(served.url, served.key) as client:
        name = _create(client, schedule)
        for trial in client.study(name).trials():
            used = _train(trial, str(tmp_path))
        detail = client._http.json("GET", f"/studies/{name}/trials/0")
    assert detail["state"] == "COMPLETE"
    values = [detail["intermediate_values"][str(e)] for e in range(trial.max_epochs)]
    expected = worker_lrs(trial, values, STEPS)
    assert len(used) == STEPS * trial.max_epochs
    assert used == pytest.approx(expected, rel=1e-9)
    # The warm-up epoch trains below the base LR; the recorded curve is each epoch's first LR.
    assert used[0] == pytest.approx(trial.learning_rate / 2)
    assert detail["lr_curve"] == pytest.approx(expected[::STEPS], rel=1e-9)


def test_a_pruned_trial_stops_the_trainer(served: Served, tmp_path: Any) -> None:
    # Successive halving with two trials: the worse one is pruned at the first
    # rung (after epoch 1). The metric is fixed per trial so that the test
    # knows which one is worse; the training itself is real.
    with Client(served.url, served.key) as client:
        name = _create(
            client,
            "step",
            n_trials=2,
            pruner={"type": "successive_halving", "reduction_factor": 2},
        )
        steps: dict[int, int] = {}
        for trial in client.study(name).trials():
            fixed = {"accuracy": 0.9 if trial.number == 0 else 0.1}
            steps[trial.number] = len(_train(trial, str(tmp_path), lambda _p, m=fixed: m))
        rows = client.study(name).trial_rows()
    assert [r["state"] for r in rows] == ["COMPLETE", "PRUNED"]
    assert steps[0] == STEPS * 4
    assert steps[1] == STEPS * 2  # stopped right after the pruned report of epoch 1


def test_the_callback_needs_one_evaluation_per_epoch(served: Served, tmp_path: Any) -> None:
    with Client(served.url, served.key) as client:
        name = _create(client, "step")
        for trial in client.study(name).trials():
            args = transformers.TrainingArguments(
                output_dir=str(tmp_path), eval_strategy="no", report_to="none", use_cpu=True
            )
            model = _Net()
            trainer = transformers.Trainer(
                model=model,
                args=args,
                train_dataset=_data(N_TRAIN, 0),
                optimizers=trial_optimizers(trial, model, steps_per_epoch=STEPS),
                callbacks=[LrsearchCallback(trial)],
            )
            with pytest.raises(ValueError, match="eval_strategy='epoch'"):
                trainer.train()
            trial.fail("test: misconfigured")


@pytest.mark.parametrize("wrong", [STEPS - 1, STEPS + 1, 2 * STEPS])
def test_a_wrong_steps_per_epoch_is_refused(served: Served, tmp_path: Any, wrong: int) -> None:
    # Otherwise the schedule's epochs drift from the Trainer's, silently.
    with Client(served.url, served.key) as client:
        name = _create(client, "step")
        for trial in client.study(name).trials():
            with pytest.raises(ValueError, match=f"pass steps_per_epoch={STEPS}"):
                _train(trial, str(tmp_path), steps_per_epoch=wrong)
            trial.fail("test: misconfigured")
