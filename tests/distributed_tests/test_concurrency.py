"""Many ``lrsearch worker`` processes on one PostgreSQL study: exact budgets, no double runs."""

from __future__ import annotations

import re
import socket
import sys
import time
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.storage._tables import trial_results, trial_runs
from tests.distributed_tests.conftest import (
    Proc,
    Procs,
    assert_exact_budget,
    wait_for,
    worker_env,
    worker_sessions,
)

pytestmark = pytest.mark.postgres

# Two engines per worker (ours and Optuna's), each pool_size 2 + max_overflow 2.
MAX_SESSIONS_PER_WORKER = 8


def _run_to_the_end(pg: storage.Backend, workers: list[Proc], timeout: float) -> dict[int, int]:
    """Wait for every worker to exit; returns the most sessions each had open at once."""
    peak = dict.fromkeys((w.pid for w in workers), 0)
    deadline = time.monotonic() + timeout
    while any(w.popen.poll() is None for w in workers):
        for w in workers:
            if w.popen.poll() is None:
                peak[w.pid] = max(peak[w.pid], worker_sessions(pg, w.pid))
        if time.monotonic() > deadline:
            pytest.fail("workers still running:\n" + "\n".join(w.describe() for w in workers))
        time.sleep(0.2)
    for w in workers:
        assert w.popen.returncode == 0, w.describe()
    return peak


def _numbers_printed(workers: list[Proc], study: str) -> Counter[int]:
    """Trial numbers in the workers' per-trial output lines, with how often each appears."""
    pattern = re.compile(rf"^{re.escape(study)} #(\d+)", re.MULTILINE)
    return Counter(int(n) for w in workers for n in pattern.findall(w.out))


def _assert_no_sessions_left(pg: storage.Backend, workers: list[Proc]) -> None:
    for w in workers:
        wait_for(
            lambda w=w: worker_sessions(pg, w.pid) == 0,
            timeout=10,
            what=f"PostgreSQL sessions of exited worker {w.pid} to close",
        )


# Alone: several workers on a 3 s grace period; a starved heartbeat reads as stale.
@pytest.mark.serial
def test_four_workers_finish_a_40_trial_study_exactly_once_each(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs
) -> None:
    record = make_study(n_trials=40)
    env = worker_env(pg_url)
    workers = [procs.worker(env, "--study", record.name, "--device", "cpu") for _ in range(4)]
    peak = _run_to_the_end(pg, workers, timeout=150)

    trials = assert_exact_budget(pg, record)
    assert len(trials) == 40
    assert all(t.state == TrialState.COMPLETE for t in trials)
    host = socket.gethostname()
    ours = {f"{host}:{w.pid}" for w in workers}
    for t in trials:
        # One worker per trial, and every epoch reported exactly once.
        assert t.user_attrs["worker"] in ours
        assert sorted(t.intermediate_values) == [0, 1, 2]
        assert len(t.user_attrs["lr_curve"]) == 3
    printed = _numbers_printed(workers, record.name)
    assert printed == Counter(range(40)), "a trial was reported by two workers, or by none"
    with pg.engine.connect() as conn:
        rows = conn.execute(
            sa.select(trial_results.c.number, trial_results.c.state).where(
                trial_results.c.study_id == record.study_id
            )
        ).all()
        left = conn.execute(
            sa.select(sa.func.count())
            .select_from(trial_runs)
            .where(trial_runs.c.study_id == record.study_id)
        ).scalar_one()
    assert sorted(n for n, _ in rows) == list(range(40))
    assert {s for _, s in rows} == {"COMPLETE"}
    assert left == 0
    # Sessions were visible under the worker's name, few, and all gone after exit.
    assert all(0 < p <= MAX_SESSIONS_PER_WORKER for p in peak.values()), peak
    _assert_no_sessions_left(pg, workers)


# Alone: several workers on a 3 s grace period; a starved heartbeat reads as stale.
@pytest.mark.serial
def test_eight_workers_racing_for_ten_trials_finish_exactly_ten(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs
) -> None:
    record = make_study(n_trials=10, max_epochs=2)
    env = worker_env(pg_url)
    workers = [procs.worker(env, "--study", record.name, "--device", "cpu") for _ in range(8)]
    _run_to_the_end(pg, workers, timeout=150)

    trials = assert_exact_budget(pg, record)
    assert len(trials) == 10
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert _numbers_printed(workers, record.name) == Counter(range(10))
    done = [int(m) for w in workers for m in re.findall(r"worker done: (\d+) trials", w.err)]
    assert sum(done) == 10
    assert len(done) == 8
    _assert_no_sessions_left(pg, workers)


def test_many_processes_creating_the_schema_of_an_empty_database_at_once(
    pg_url: str, procs: Procs
) -> None:
    # Without the schema lock in open_backend, most of these fail with a unique
    # violation in PostgreSQL's catalog (concurrent CREATE TABLE of one name).
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"lrsearch_schema_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.ProgrammingError as exc:
        admin.dispose()
        pytest.skip(f"cannot create a scratch database: {str(exc).splitlines()[0]}")
    try:
        url = sa.engine.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        code = "import sys, storage; storage.open_backend(sys.argv[1]).dispose()"
        env = worker_env(url)
        opened = [procs.start([sys.executable, "-c", code, url], env) for _ in range(6)]
        for proc in opened:
            assert proc.wait(timeout=60) == 0, proc.describe()
        scratch = sa.create_engine(url)
        try:
            with scratch.connect() as conn:
                tables = set(sa.inspect(conn).get_table_names())
        finally:
            scratch.dispose()
        assert {"studies", "trials", "lrsearch_studies", "lrsearch_trial_runs"} <= tables
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
