"""How many completed trials parameter importance needs before its ranking means anything.

Fabricated studies with a known answer: the objective depends mostly on the
learning rate, then the schedule, then dropout; batch size and weight init are
nearly noise. For each of ``--studies`` seeds, 200 random trials are drawn and
ranked by Optuna's evaluator; then the first ``n`` trials alone are ranked, for
several ``n``, and compared with the 200-trial ranking (Spearman rank
correlation, and whether the top parameter agrees). The service warns below
``service.importance.MIN_RELIABLE_TRIALS`` completed trials on this evidence.

Usage::

    .venv/bin/python bench/importance_stability.py [--evaluator ped_anova|fanova] [--studies 20]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import warnings
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, create_trial

SCHEDULE_BONUS = {
    "step": 0.02,
    "cosine": 0.03,
    "plateau": 0.0,
    "cyclic": -0.01,
    "warmup": 0.01,
    "exponential": 0.0,
}
INITS = ["xavier_uniform", "kaiming_normal", "orthogonal", "default"]
DISTRIBUTIONS: dict[str, Any] = {
    "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
    "dropout": FloatDistribution(0.0, 0.5),
    "batch_size": CategoricalDistribution([32, 64, 128, 256]),
    "weight_init": CategoricalDistribution(INITS),
    "schedule": CategoricalDistribution(list(SCHEDULE_BONUS)),
}
SIZES = (3, 5, 8, 10, 15, 20, 30)


def _objective(p: dict[str, Any], rng: random.Random) -> float:
    close = 1.0 - min(1.0, abs(math.log10(p["learning_rate"]) + 1.5) / 3.0)
    return float(
        0.3
        + 0.55 * close
        + SCHEDULE_BONUS[p["schedule"]]
        - 0.08 * p["dropout"]
        + 0.002 * (p["batch_size"] == 64)
        + rng.gauss(0.0, 0.01)
    )


def _ranks(trials: list[FrozenTrial], evaluator: str) -> dict[str, int]:
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    ev: optuna.importance.BaseImportanceEvaluator = (
        optuna.importance.FanovaImportanceEvaluator(seed=0)
        if evaluator == "fanova"
        else optuna.importance.PedAnovaImportanceEvaluator()
    )
    imp = optuna.importance.get_param_importances(study, evaluator=ev)
    return {name: i for i, name in enumerate(sorted(imp, key=lambda k: -imp[k]))}


def _spearman(a: dict[str, int], b: dict[str, int]) -> float:
    n = len(a)
    return 1.0 - 6.0 * sum((a[k] - b[k]) ** 2 for k in a) / (n * (n * n - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluator", choices=["ped_anova", "fanova"], default="ped_anova")
    parser.add_argument("--studies", type=int, default=20)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")  # experimental-evaluator warnings: not the question here
    rho: dict[int, list[float]] = {n: [] for n in SIZES}
    top: dict[int, int] = dict.fromkeys(SIZES, 0)
    for seed in range(args.studies):
        rng = random.Random(seed)
        trials = []
        for _ in range(200):
            p = {
                "learning_rate": 10 ** rng.uniform(-4, 0),
                "dropout": rng.uniform(0.0, 0.5),
                "batch_size": rng.choice([32, 64, 128, 256]),
                "weight_init": rng.choice(INITS),
                "schedule": rng.choice(list(SCHEDULE_BONUS)),
            }
            trials.append(
                create_trial(params=p, distributions=DISTRIBUTIONS, value=_objective(p, rng))
            )
        ref = _ranks(trials, args.evaluator)
        for n in SIZES:
            got = _ranks(trials[:n], args.evaluator)
            rho[n].append(_spearman(got, ref))
            top[n] += min(got, key=got.__getitem__) == min(ref, key=ref.__getitem__)
    print(f"evaluator {args.evaluator}, {args.studies} studies, reference: 200 trials")
    for n in SIZES:
        print(
            f"n={n:3d}  spearman mean {statistics.mean(rho[n]):+.2f}  "
            f"top parameter agrees {top[n]}/{args.studies}"
        )


if __name__ == "__main__":
    main()
