"""Fixtures for the storage tests: real SQLite and real PostgreSQL.

The PostgreSQL database is shared by everyone's tests and never wiped, so
every study gets a unique name and assertions look only at their own study.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrsearch import storage
from lrsearch.storage import Backend
from tests.conftest import postgres_url_or_skip
from tests.storage_tests.helpers import Played, Step, budget_of, definition, play
from tests.storage_tests.migration_helpers import fresh_database


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """An open storage backend: a temporary SQLite file, or the PostgreSQL test server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('storage') / 'results.db'}"
    else:
        url = postgres_url_or_skip()
    handle = storage.open_backend(url)
    yield handle
    handle.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A backend on a new empty database (a SQLite file, or a PostgreSQL database dropped after)."""
    with fresh_database(request.param, tmp_path) as url:
        backend = storage.open_backend(url)
        try:
            yield backend
        finally:
            backend.dispose()


def _main_steps() -> list[Step]:
    """A maximize study with every case the queries must get right.

    Ties across and within schedules, an infinite COMPLETE value (never best),
    a PRUNED value above every COMPLETE one (never best, but in the median),
    retried and unretried failures, a schedule with only pruned/failed trials
    (``cyclic``), one with no trial at all (``plateau``), and running and
    waiting trials left at the end.
    """
    steps = [
        Step("step", "COMPLETE", 0.91, (0.5, 0.8, 0.91)),
        Step("cosine", "COMPLETE", 0.91, (0.6, 0.91)),
        Step("step", "COMPLETE", math.inf, (0.7, 0.9)),
        Step("exponential", "PRUNED", None, (0.3, 0.99)),
        Step("cyclic", "PRUNED", None, (0.2, 0.5)),
        Step("cyclic", "FAIL", None, (0.1, math.nan)),
        Step("step", "GIVE_BACK", None, (0.4,)),
        Step(None, "COMPLETE", 0.95, (0.6, 0.8, 0.9, 0.93, 0.95)),
        Step("cosine", "GIVE_BACK", None, ()),
        Step(None, "GIVE_BACK", None, (0.2,)),
        Step("exponential", "COMPLETE", 0.95, (0.9, 0.95)),
        Step("step", "COMPLETE", 0.95, (0.95,)),
    ]
    rng = random.Random(1234)
    for _ in range(18):
        sched = rng.choice(["step", "exponential", "cosine", "cyclic"])
        outcome = rng.choice(["PRUNED", "FAIL"] if sched == "cyclic" else ["COMPLETE", "PRUNED"])
        curve = tuple(round(rng.uniform(0.1, 0.9), 3) for _ in range(rng.randint(1, 5)))
        steps.append(Step(sched, outcome, curve[-1], curve))
    steps += [
        Step("cosine", "RUNNING", None, (0.4, 0.45)),
        Step("exponential", "RUNNING", None, ()),
        Step("step", "GIVE_BACK", None, (0.3,)),  # its retry stays WAITING
        Step("plateau", "BASELINE"),
    ]
    return steps


MAIN_STEPS = _main_steps()

MIN_STEPS = [
    Step("step", "COMPLETE", 0.30, (0.9, 0.5, 0.3)),
    Step("cosine", "COMPLETE", 0.20, (0.8, 0.2)),
    Step("cosine", "COMPLETE", -math.inf, (0.8, 0.1)),
    Step("cosine", "PRUNED", None, (0.9, 0.05)),
    Step("exponential", "COMPLETE", 0.20, (0.25, 0.2)),
    Step("exponential", "FAIL", None, (0.7,)),
    Step("step", "COMPLETE", 0.25, (0.4, 0.25)),
    Step("step", "PRUNED", None, (0.6, 0.45, 0.35)),
]


@pytest.fixture(scope="session")
def main_study(backend: Backend) -> Played:
    """A maximize study of 36 trials in every state, played once per backend."""
    defn = definition(budget={"n_trials": budget_of(MAIN_STEPS), "max_epochs": 5, "max_retries": 1})
    return play(backend, defn, MAIN_STEPS)


@pytest.fixture(scope="session")
def min_study(backend: Backend) -> Played:
    """A minimize study (``val_loss``), every trial finished and the budget done."""
    defn = definition(
        objective={"metric": "val_loss"},
        budget={"n_trials": budget_of(MIN_STEPS), "max_epochs": 4, "max_retries": 0},
        search_space={"schedules": ["step", "exponential", "cosine"]},
    )
    return play(backend, defn, MIN_STEPS)
