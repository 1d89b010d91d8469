"""The learning rate the optimizer uses each epoch matches each schedule's definition.

Expected curves are computed here with plain formulas, independently of the
torch schedulers that produce the real ones.
"""

from __future__ import annotations

import itertools
import math

import pytest

from lrsearch.workers.tasks import SyntheticTask
from lrsearch.workers.training import train_trial
from tests.workers_tests.conftest import ConfigFactory

LR = 0.04


def _curve(task: SyntheticTask, config_factory: ConfigFactory, **fields: object) -> list[float]:
    result = train_trial(config_factory(learning_rate=LR, **fields), task)
    assert result.status == "complete"
    assert len(result.lr_curve) == result.epochs_run
    assert [m["lr"] for m in result.metrics] == result.lr_curve
    return result.lr_curve


def test_step_halves_every_step_size_epochs(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    curve = _curve(
        small_synthetic, make_config, schedule={"type": "step", "step_size": 3, "gamma": 0.5}
    )
    assert curve == pytest.approx([LR * 0.5 ** (epoch // 3) for epoch in range(10)], rel=1e-9)


def test_exponential_multiplies_by_gamma_every_epoch(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    curve = _curve(small_synthetic, make_config, schedule={"type": "exponential", "gamma": 0.8})
    assert curve == pytest.approx([LR * 0.8**epoch for epoch in range(10)], rel=1e-9)


@pytest.mark.parametrize("warmup", [0, 3])
def test_cosine_follows_the_cosine_formula_over_the_epochs_after_warmup(
    small_synthetic: SyntheticTask, make_config: ConfigFactory, warmup: int
) -> None:
    eta_min, max_epochs = 0.1, 10
    curve = _curve(
        small_synthetic,
        make_config,
        schedule={"type": "cosine", "eta_min": eta_min},
        warmup_epochs=warmup,
        max_epochs=max_epochs,
    )
    t_max = max_epochs - warmup - 1
    floor = eta_min * LR

    def cosine(step: int) -> float:
        return floor + (LR - floor) * (1 + math.cos(math.pi * step / t_max)) / 2

    assert curve[warmup:] == pytest.approx([cosine(j) for j in range(t_max + 1)], rel=1e-9)
    assert all(a > b for a, b in zip(curve[warmup:], curve[warmup + 1 :], strict=False))
    # The last epoch trains at the floor.
    assert curve[-1] == pytest.approx(floor, rel=1e-9)


def test_warmup_prefix_ramps_linearly_then_hands_over(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    w = 3
    curve = _curve(
        small_synthetic,
        make_config,
        schedule={"type": "step", "step_size": 4, "gamma": 0.5},
        warmup_epochs=w,
        max_epochs=10,
    )
    ramp = [LR * (k + 1) / (w + 1) for k in range(w + 1)]
    # The main schedule's own epoch 0 is the trial's epoch w.
    main = [LR * 0.5 ** ((epoch - w) // 4) for epoch in range(w, 10)]
    assert curve[: w + 1] == pytest.approx(ramp, rel=1e-9)
    assert curve[w:] == pytest.approx(main, rel=1e-9)


def test_warmup_schedule_ramps_from_start_factor_then_stays_constant(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    start, ramp = 0.1, 4
    curve = _curve(
        small_synthetic,
        make_config,
        schedule={"type": "warmup", "start_factor": start, "ramp_epochs": ramp},
    )
    expected = [LR * (start + (1 - start) * min(epoch, ramp) / ramp) for epoch in range(10)]
    assert curve == pytest.approx(expected, rel=1e-9)
    assert curve[ramp:] == pytest.approx([LR] * (10 - ramp), rel=1e-9)


def test_plateau_drops_by_factor_once_patience_runs_out(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    lr, factor, patience = 1e-7, 0.5, 2
    result = train_trial(
        make_config(
            learning_rate=lr,
            schedule={"type": "plateau", "factor": factor, "patience": patience},
            max_epochs=10,
        ),
        small_synthetic,
    )
    # The premise: with so tiny a learning rate the objective never improves.
    assert len({m["val_accuracy"] for m in result.metrics}) == 1
    # Epoch 0 sets the best value; torch reduces once more than `patience`
    # epochs in a row fail to beat it, then counts afresh.
    first_drop = patience + 2
    second_drop = first_drop + patience + 1
    expected = [
        lr * factor ** ((epoch >= first_drop) + (epoch >= second_drop)) for epoch in range(10)
    ]
    assert result.lr_curve == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_stays_between_lr_and_max_lr_and_rises_and_falls(
    small_synthetic: SyntheticTask, make_config: ConfigFactory, mode: str
) -> None:
    max_lr, step_size = 4.0, 2
    curve = _curve(
        small_synthetic,
        make_config,
        schedule={"type": "cyclic", "max_lr": max_lr, "step_size": step_size, "mode": mode},
        max_epochs=10,
    )
    assert all(LR * (1 - 1e-9) <= v <= max_lr * LR * (1 + 1e-9) for v in curve)
    diffs = [b - a for a, b in itertools.pairwise(curve)]
    assert any(d > 0 for d in diffs)
    assert any(d < 0 for d in diffs)
    # Each epoch is a whole number of batches, so epoch starts land on the
    # cycle's corners and midpoints: base, mid, peak, mid, base, ...
    assert curve[0] == pytest.approx(LR, rel=1e-9)
    assert curve[2 * step_size] == pytest.approx(LR, rel=1e-9)
    if mode == "triangular":
        peak = [LR + (max_lr * LR - LR) * (1 - abs(e / step_size % 2 - 1)) for e in range(10)]
        assert curve == pytest.approx(peak, rel=1e-9)
    else:
        # Both modes halve the amplitude from one cycle's peak to the next.
        first, second = curve[step_size] - LR, curve[3 * step_size] - LR
        assert second / first == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize(
    ("schedule", "first_main_factor"),
    [
        ({"type": "step", "step_size": 2, "gamma": 0.5}, 1.0),
        ({"type": "exponential", "gamma": 0.9}, 1.0),
        ({"type": "cosine", "eta_min": 0.0}, 1.0),
        ({"type": "plateau", "factor": 0.5, "patience": 1}, 1.0),
        ({"type": "cyclic", "max_lr": 3.0, "step_size": 1, "mode": "triangular"}, 1.0),
        ({"type": "warmup", "start_factor": 0.2, "ramp_epochs": 2}, 0.2),
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else None,
)
def test_warmup_prefix_hands_over_to_every_schedule_type(
    small_synthetic: SyntheticTask,
    make_config: ConfigFactory,
    schedule: dict[str, object],
    first_main_factor: float,
) -> None:
    w = 2
    curve = _curve(small_synthetic, make_config, schedule=schedule, warmup_epochs=w, max_epochs=5)
    assert curve[:w] == pytest.approx([LR / 3, 2 * LR / 3], rel=1e-9)
    # The main schedule starts from its own epoch 0 at the trial's epoch w.
    assert curve[w] == pytest.approx(first_main_factor * LR, rel=1e-9)
