"""How long a claim holds the per-study lock, with a slow sampler (GP by default).

Every worker of a study serialises on that lock, so its hold time bounds how
many claims per second a study can serve. The script creates a study, plays
``--warm`` trials (claim, sample, finish with a made-up value, no training) so
that the sampler has history to fit, then times ``--claims`` more claims: the
whole ``claim_trial`` call and the time the study lock was held inside it.

Usage::

    .venv/bin/python bench/claim_lock.py [--url URL] [--sampler gp|cmaes|tpe]
        [--warm 15] [--claims 10]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition, sample_config


def _timed_lock(held: list[float]) -> Callable[..., Any]:
    """Wrap the lock used by ``claim_trial`` so that each hold is timed."""
    module = sys.modules[storage.claim_trial.__module__]
    original = module.study_lock  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with original(*args, **kwargs) as conn:
            start = time.perf_counter()
            try:
                yield conn
            finally:
                held.append((time.perf_counter() - start) * 1000.0)

    module.study_lock = timed  # type: ignore[attr-defined]
    return original  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="sqlite:////tmp/lrsearch-claim-lock.db")
    parser.add_argument("--sampler", default="gp")
    parser.add_argument("--warm", type=int, default=15)
    parser.add_argument("--claims", type=int, default=10)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = storage.open_backend(args.url)
    definition = parse_definition(
        {
            "name": f"bench-lock-{uuid.uuid4().hex[:8]}",
            "task": "synthetic",
            "budget": {"n_trials": args.warm + args.claims, "max_epochs": 2},
            "sampler": {"type": args.sampler, "seed": 0},
            "search_space": {"schedules": ["cosine"], "warmup_epochs": 0},
        }
    )
    record = storage.create_study(backend, definition)
    study = storage.load_optuna_study(backend, record)
    held: list[float] = []
    _timed_lock(held)
    calls: list[float] = []
    timings: list[float] = []
    try:
        for i in range(args.warm + args.claims):
            held.clear()
            start = time.perf_counter()
            trial = storage.claim_trial(backend, study, worker="bench:0")
            call_ms = (time.perf_counter() - start) * 1000.0
            assert trial is not None
            config = sample_config(trial, record.definition)
            value = math.exp(-((math.log10(config.learning_rate) + 2) ** 2))
            storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=value)
            if i >= args.warm:
                # The claim's lock; the finish takes it again and is not counted.
                calls.append(call_ms)
                timings.append(held[0])
    finally:
        storage.change_state(backend, record.name, "cancel")
        backend.dispose()
    print(
        f"{backend.dialect}, sampler {args.sampler}, {args.warm} warm trials, "
        f"{args.claims} claims: lock held p50 {statistics.median(timings):.1f} ms "
        f"(max {max(timings):.1f}); claim_trial p50 {statistics.median(calls):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
