"""Faults under real ``lrsearch worker`` processes on PostgreSQL.

kill -9 mid-trial, SIGTERM (once, twice, and with an epoch longer than the stop
timeout), and PostgreSQL restarted under running workers. In each, the study
must end with exactly its budget and nothing finished may be lost.

The restart test is last and marked slow: it restarts the shared test server.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState

from lrsearch import storage
from lrsearch.storage._tables import trial_results
from lrsearch.storage._trials import sweep_stale_trials
from tests.distributed_tests.conftest import (
    GRACE_S,
    HEARTBEAT_S,
    Proc,
    Procs,
    assert_exact_budget,
    trials_of,
    wait_for,
    worker_env,
    worker_sessions,
)

# Alone: these kill workers on a heartbeat clock, and the last one restarts the
# shared PostgreSQL server.
pytestmark = [pytest.mark.postgres, pytest.mark.serial]

STOP_TIMEOUT_S = 10.0


def _running_with_progress(pg: storage.Backend, name: str) -> FrozenTrial | None:
    """A trial that is RUNNING and has reported at least one epoch."""
    for t in trials_of(pg, name):
        if t.state == TrialState.RUNNING and t.intermediate_values and "worker" in t.user_attrs:
            return t
    return None


def _trial(pg: storage.Backend, name: str, number: int) -> FrozenTrial:
    return next(t for t in trials_of(pg, name) if t.number == number)


def _pid_of(trial: FrozenTrial) -> int:
    return int(str(trial.user_attrs["worker"]).rsplit(":", 1)[1])


def test_kill_9_mid_trial_is_failed_stale_within_grace_and_its_retry_completes(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs
) -> None:
    # Batch size 32: ~0.1 s per epoch, so 15 epochs leave time to kill mid-trial.
    record = make_study(n_trials=2, max_epochs=15, batch_size=(32,))
    env = worker_env(pg_url)
    workers = [procs.worker(env, "--study", record.name, "--device", "cpu") for _ in range(2)]
    victim_trial = wait_for(
        lambda: _running_with_progress(pg, record.name), 60, "a trial to report an epoch"
    )
    victim_pid = _pid_of(victim_trial)
    victim = next(w for w in workers if w.pid == victim_pid)
    survivor = next(w for w in workers if w.pid != victim_pid)
    os.kill(victim_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    assert victim.popen.wait(timeout=10) == -signal.SIGKILL

    failed = wait_for(
        lambda: (t := _trial(pg, record.name, victim_trial.number)).state == TrialState.FAIL and t,
        30,
        "the killed worker's trial to be failed as stale",
        interval=0.05,
    )
    detected_after = time.monotonic() - killed_at
    assert str(failed.user_attrs["error"]).startswith("stale"), failed.user_attrs
    # Not before the grace period (counted from the last heartbeat, at most one
    # interval before the kill), and soon after it: live workers sweep every
    # half grace period, even while busy with a trial of their own.
    assert GRACE_S - 2 * HEARTBEAT_S <= detected_after <= GRACE_S + GRACE_S / 2 + 3.0
    # The dead process's sessions are gone (the kernel closed its sockets).
    wait_for(lambda: worker_sessions(pg, victim_pid) == 0, 10, "the killed worker's sessions")

    assert survivor.wait(timeout=120) == 0, survivor.describe()
    trials = assert_exact_budget(pg, record)
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim_trial.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE
    assert retry.params == failed.params
    assert retry.user_attrs["attempt"] == 1
    assert (
        retry.user_attrs["worker"]
        == f"{failed.user_attrs['worker'].rsplit(':', 1)[0]}:{survivor.pid}"
    )
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "COMPLETE", "FAIL"]
    print(f"kill -9: trial #{failed.number} failed as stale {detected_after:.1f} s after the kill")


def test_sigterm_exits_0_within_the_bound_and_the_trial_is_retried(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs
) -> None:
    record = make_study(n_trials=1, max_epochs=15, batch_size=(32,))
    env = worker_env(pg_url, LRSEARCH_STOP_TIMEOUT_S=str(STOP_TIMEOUT_S))
    first = procs.worker(env, "--study", record.name, "--device", "cpu")
    trial = wait_for(lambda: _running_with_progress(pg, record.name), 60, "an epoch reported")
    first.popen.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert first.wait(timeout=STOP_TIMEOUT_S + 5) == 0, first.describe()
    took = time.monotonic() - sent
    assert took < STOP_TIMEOUT_S
    print(f"SIGTERM: exit 0 after {took:.2f} s")
    assert "stopping after the current epoch" in first.err

    given_back = _trial(pg, record.name, trial.number)
    assert given_back.state == TrialState.FAIL
    assert str(given_back.user_attrs["error"]).startswith("interrupted")
    # It stopped at an epoch boundary: fewer epochs than the budget, none twice.
    steps = sorted(given_back.intermediate_values)
    assert steps == list(range(len(steps)))
    assert len(steps) < 15
    wait_for(lambda: worker_sessions(pg, first.pid) == 0, 10, "the stopped worker's sessions")

    second = procs.worker(env, "--study", record.name, "--device", "cpu")
    assert second.wait(timeout=120) == 0, second.describe()
    trials = assert_exact_budget(pg, record)
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
    assert retry.state == TrialState.COMPLETE
    assert retry.params == given_back.params


def _in_a_slow_epoch(
    pg_url: str,
    plugin_path: str,
    tmp_path: Path,
    procs: Procs,
    record: storage.StudyRecord,
    **extra: str,
) -> Proc:
    """A worker on a ``test-slow`` study, once it is inside its first 30-second epoch."""
    marker = tmp_path / "in-epoch"
    env = worker_env(
        pg_url,
        PYTHONPATH=plugin_path,
        LRSEARCH_TEST_EPOCH_S="30",
        LRSEARCH_TEST_EPOCH_MARKER=str(marker),
        **extra,
    )
    proc = procs.worker(env, "--study", record.name, "--device", "cpu")
    wait_for(marker.exists, 60, "the worker to enter its first epoch")
    return proc


def test_second_sigterm_exits_at_once_and_the_trial_goes_stale(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs, plugin_path: str, tmp_path: Path
) -> None:
    record = make_study(n_trials=1, max_epochs=3, task="test-slow")
    proc = _in_a_slow_epoch(pg_url, plugin_path, tmp_path, procs, record)
    proc.popen.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.popen.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert proc.wait(timeout=5) == 128 + signal.SIGTERM, proc.describe()
    assert time.monotonic() - sent < 2.0
    assert "second signal" in proc.err

    # Nothing was handed back; the service's sweep finds the trial once stale.
    assert _trial(pg, record.name, 0).state == TrialState.RUNNING
    time.sleep(GRACE_S + HEARTBEAT_S)
    assert sweep_stale_trials(pg, grace_s=GRACE_S, study=record.name) == {record.name: [0]}
    trials = trials_of(pg, record.name)
    assert str(trials[0].user_attrs["error"]).startswith("stale")
    assert [t.user_attrs.get("retry_of") for t in trials] == [None, 0]
    assert trials[1].state == TrialState.WAITING


def test_stop_timeout_bounds_an_epoch_longer_than_it(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs, plugin_path: str, tmp_path: Path
) -> None:
    record = make_study(n_trials=1, max_epochs=3, task="test-slow")
    proc = _in_a_slow_epoch(
        pg_url, plugin_path, tmp_path, procs, record, LRSEARCH_STOP_TIMEOUT_S="2"
    )
    proc.popen.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert proc.wait(timeout=10) == 0, proc.describe()
    assert 1.5 <= time.monotonic() - sent < 5.0
    assert "giving the trial back and exiting" in proc.err
    trials = trials_of(pg, record.name)
    assert trials[0].state == TrialState.FAIL
    assert str(trials[0].user_attrs["error"]).startswith("interrupted")
    assert trials[1].user_attrs["retry_of"] == 0
    assert trials[1].state == TrialState.WAITING


def _pg_cluster() -> tuple[str, str] | None:
    """(version, cluster) of the local PostgreSQL, if pg_ctlcluster can restart it."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir())
    return (versions[-1], "main") if versions else None


def _pg_ctl(cluster: tuple[str, str], action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action],
        check=True,
        timeout=120,
        capture_output=True,
    )


def _server_started_at(pg: storage.Backend) -> float:
    with pg.engine.connect() as conn:
        return float(
            conn.execute(
                sa.text("SELECT extract(epoch FROM pg_postmaster_start_time())")
            ).scalar_one()
        )


@pytest.mark.slow
def test_postgres_restart_mid_study_loses_nothing_finished(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs
) -> None:
    cluster = _pg_cluster()
    host = sa.engine.make_url(pg_url).host
    if cluster is None or host not in ("127.0.0.1", "localhost", None):
        pytest.skip("needs a local PostgreSQL that pg_ctlcluster can restart")
    record = make_study(n_trials=10, max_epochs=8, batch_size=(32,))
    env = worker_env(pg_url)
    workers = [procs.worker(env, "--study", record.name, "--device", "cpu") for _ in range(3)]

    def completed() -> dict[int, float]:
        return {
            t.number: float(t.value)
            for t in trials_of(pg, record.name)
            if t.state == TrialState.COMPLETE and t.value is not None
        }

    before = wait_for(lambda: c if len(c := completed()) >= 3 else None, 120, "3 trials")
    started_before = _server_started_at(pg)
    # A restart whose downtime outlasts the grace period: every heartbeat is
    # stale when the server is back, yet no live trial may be lost.
    _pg_ctl(cluster, "stop")
    time.sleep(GRACE_S + 2)
    _pg_ctl(cluster, "start")
    for w in workers:
        assert w.wait(timeout=180) == 0, w.describe()
    assert _server_started_at(pg) > started_before, "the server was not restarted"

    trials = assert_exact_budget(pg, record)
    after = {t.number: t for t in trials}
    # Seeded samplers survive the reconnect with their random state: no
    # configuration is proposed twice (a retry repeats its original on purpose).
    proposed = [
        tuple(sorted(t.params.items()))
        for t in trials
        if t.params and "retry_of" not in t.user_attrs
    ]
    assert len(proposed) == len(set(proposed)), "a configuration was proposed twice"
    for number, value in before.items():
        assert after[number].state == TrialState.COMPLETE
        assert after[number].value == value
    with pg.engine.connect() as conn:
        rows = dict(
            conn.execute(
                sa.select(trial_results.c.number, trial_results.c.state).where(
                    trial_results.c.study_id == record.study_id
                )
            ).all()
        )
    assert set(rows) == set(after)
    assert all(rows[n] == "COMPLETE" for n in before)
    # Evidence that the restart hit the workers (and what they did about it).
    hit = sum(bool(re.search(r"storage unavailable|failed", w.err)) for w in workers)
    failed = {t.number: t.user_attrs.get("error") for t in trials if t.state == TrialState.FAIL}
    print(
        f"restart: {hit}/3 workers logged storage errors; {len(before)} trials COMPLETE before, "
        f"all kept; {len(trials)} trials in all; FAIL: {failed}"
    )
