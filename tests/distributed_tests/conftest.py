"""Fixtures for the distributed tests: real PostgreSQL, real ``lrsearch worker`` processes.

Every worker is a subprocess started through :class:`Procs`, which kills it
(and anything it started: it leads its own process group) in teardown whatever
the test did. Studies get unique names, are cancelled at teardown so nobody
else's worker picks them up, and use the ``synthetic`` task or the test tasks
of ``plugin_tasks.py``, which are registered as a third-party package would be
(an ``lrsearch.tasks`` entry point in a ``.dist-info`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition
from tests.conftest import postgres_url_or_skip

HERE = Path(__file__).resolve().parent
LRSEARCH = Path(sys.executable).with_name("lrsearch")

# Fast liveness for tests: heartbeat every second, stale after three.
HEARTBEAT_S = 1.0
GRACE_S = 3.0


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL test server (skips, or fails with LRSEARCH_REQUIRE_POSTGRES=1)."""
    return postgres_url_or_skip()


@pytest.fixture(scope="session")
def pg(pg_url: str) -> Iterator[storage.Backend]:
    """This test process's own handle on PostgreSQL (creates the schema if needed)."""
    backend = storage.open_backend(pg_url, application_name="lrsearch-tests")
    yield backend
    backend.dispose()


@pytest.fixture
def make_study(pg: storage.Backend) -> Iterator[Callable[..., storage.StudyRecord]]:
    """Create a uniquely named study; ``**budget`` and ``**space`` override the defaults.

    Defaults: ``synthetic``, random sampler, no pruner, batch size 256 (a few
    milliseconds per epoch), 3 epochs. Every study made is cancelled at teardown.
    """
    made: list[str] = []

    def factory(
        *,
        n_trials: int,
        max_epochs: int = 3,
        task: str = "synthetic",
        batch_size: tuple[int, ...] = (256,),
        max_retries: int = 2,
    ) -> storage.StudyRecord:
        name = f"dist-{uuid.uuid4().hex[:12]}"
        definition = parse_definition(
            {
                "name": name,
                "task": task,
                "budget": {
                    "n_trials": n_trials,
                    "max_epochs": max_epochs,
                    "max_retries": max_retries,
                },
                "sampler": {"type": "random", "seed": 0},
                "pruner": {"type": "none"},
                # These studies test the search budget; confirmations have their own tests.
                "confirm": {"top_k": 0},
                "search_space": {
                    "batch_size": list(batch_size),
                    "learning_rate": {"low": 0.01, "high": 0.2, "log": True},
                    "schedules": ["step", "exponential", "cosine"],
                    "warmup_epochs": 0,
                },
            }
        )
        made.append(name)
        return storage.create_study(pg, definition)

    yield factory
    for name in made:
        with contextlib.suppress(storage.InvalidStateError):
            storage.change_state(pg, name, "cancel")


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PYTHONPATH on which the test tasks are installed as an entry-point plugin."""
    root = tmp_path_factory.mktemp("plugin")
    info = root / "lrsearch_test_tasks-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lrsearch-test-tasks\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[lrsearch.tasks]\ntest-oom = plugin_tasks:OomTask\ntest-slow = plugin_tasks:SlowTask\n"
    )
    return os.pathsep.join([str(root), str(HERE)])


def worker_env(pg_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test worker: our storage, fast heartbeats, one thread."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LRSEARCH_") and k != "CUDA_VISIBLE_DEVICES"
    }
    env.update(
        LRSEARCH_STORAGE=pg_url,
        LRSEARCH_HEARTBEAT_S=str(HEARTBEAT_S),
        LRSEARCH_GRACE_S=str(GRACE_S),
        # Two cores for many processes and tiny models: threads only contend.
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class Proc:
    """One started process and where its output goes."""

    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"pid {self.pid} still running after {timeout} s; stderr:\n{self.err[-3000:]}"
            )

    def describe(self) -> str:
        return (
            f"pid {self.pid} rc={self.popen.returncode}\n"
            f"--- stdout\n{self.out[-2000:]}\n--- stderr\n{self.err[-4000:]}"
        )


class Procs:
    """Starts processes for one test; teardown kills whatever is still running."""

    def __init__(self, tmp_path: Path) -> None:
        self._dir = tmp_path
        self.started: list[Proc] = []
        self.adopted: list[int] = []

    def start(self, args: list[str], env: dict[str, str]) -> Proc:
        n = len(self.started)
        out, err = self._dir / f"proc{n}.out", self._dir / f"proc{n}.err"
        with out.open("wb") as fo, err.open("wb") as fe:
            popen = subprocess.Popen(
                args,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fo,
                stderr=fe,
                # Its own process group: teardown can kill it with its children.
                start_new_session=True,
            )
        proc = Proc(popen, out, err)
        self.started.append(proc)
        return proc

    def worker(self, env: dict[str, str], *args: str) -> Proc:
        """``lrsearch worker ARGS`` (the console script, as a user runs it)."""
        return self.start([str(LRSEARCH), "worker", *args], env)

    def adopt(self, pid: int) -> None:
        """Also kill ``pid`` (and its group) at teardown: a supervisor's child, say."""
        self.adopted.append(pid)

    def kill_all(self) -> None:
        # Supervised children lead their own process groups, so they are not in
        # their supervisor's group: kill them by their own ids first.
        for pid in [*self.adopted, *(p.pid for p in self.started if p.popen.poll() is None)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for proc in self.started:
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """Start subprocesses; all are killed at teardown, pass or fail."""
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.kill_all()


# -- reading a study back -------------------------------------------------------


def trials_of(backend: storage.Backend, name: str) -> list[FrozenTrial]:
    """Every trial of the study, fresh from the database."""
    study = optuna.load_study(study_name=name, storage=backend.optuna_storage)
    return study.get_trials(deepcopy=False)


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    return {int(t.user_attrs["retry_of"]) for t in trials if "retry_of" in t.user_attrs}


def assert_exact_budget(backend: storage.Backend, record: storage.StudyRecord) -> list[FrozenTrial]:
    """The study is done with exactly its budget; returns its trials.

    COMPLETE + PRUNED + (FAIL not repeated by a ``retry_of`` trial) == n_trials,
    nothing RUNNING or WAITING, unique numbers, and our budget query agrees.
    """
    trials = trials_of(backend, record.name)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), f"duplicate trial numbers: {sorted(numbers)}"
    assert sorted(numbers) == list(range(len(numbers)))
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states, states
    assert TrialState.WAITING not in states, states
    retried = retried_numbers(trials)
    counted = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.number not in retried)
    ]
    assert len(counted) == record.n_trials, _states_text(trials)
    with backend.engine.connect() as conn:
        counts = storage.budget_counts(conn, record)
    assert counts.done
    assert counts.finished - counts.retried == record.n_trials
    return trials


def _states_text(trials: list[FrozenTrial]) -> str:
    return "\n".join(
        f"#{t.number} {t.state.name} {t.user_attrs.get('error', '')} "
        f"retry_of={t.user_attrs.get('retry_of')}"
        for t in trials
    )


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def worker_sessions(backend: storage.Backend, pid: int) -> int:
    """Open PostgreSQL sessions of the worker process ``pid`` (by application_name)."""
    with backend.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": f"lrsearch-worker:{pid}"},
            ).scalar_one()
        )
