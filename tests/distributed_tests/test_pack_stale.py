"""kill -9 of a ``lrsearch worker --pack 4`` mid-pack: every trial of its pack is retried."""

from __future__ import annotations

import signal

import pytest
from optuna.trial import TrialState

from lrsearch import storage
from tests.distributed_tests.conftest import (
    Procs,
    assert_exact_budget,
    trials_of,
    wait_for,
    worker_env,
)

# Alone: a kill -9 and a 3 s grace period; a starved heartbeat reads as stale.
pytestmark = [pytest.mark.postgres, pytest.mark.serial]


def test_a_killed_packed_worker_leaves_every_trial_of_its_pack_stale_and_retried(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs
) -> None:
    record = make_study(n_trials=4, max_epochs=20)
    env = worker_env(pg_url)
    first = procs.worker(env, "--study", record.name, "--device", "cpu", "--pack", "4")

    def pack_training() -> list[int]:
        running = [
            t
            for t in trials_of(pg, record.name)
            if t.state == TrialState.RUNNING
            and str(t.user_attrs.get("worker", "")).endswith(f":{first.pid}")
            and len(t.intermediate_values) >= 2
        ]
        return [t.number for t in running] if len(running) == 4 else []

    packed = wait_for(pack_training, 90, "four trials training in one pack")
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait(timeout=10)
    assert "pack of 4 (K=4)" in first.err

    second = procs.worker(env, "--study", record.name, "--device", "cpu", "--pack", "4")
    assert second.wait(timeout=180) == 0, second.describe()

    trials = assert_exact_budget(pg, record)
    killed = {t.number: t for t in trials if t.number in packed}
    assert len(killed) == 4
    for t in killed.values():
        assert t.state == TrialState.FAIL
        assert str(t.user_attrs["error"]).startswith("stale"), t.user_attrs["error"]
    retries = [t for t in trials if "retry_of" in t.user_attrs]
    assert sorted(int(t.user_attrs["retry_of"]) for t in retries) == sorted(packed)
    for t in retries:
        assert t.state == TrialState.COMPLETE
        assert str(t.user_attrs["worker"]).endswith(f":{second.pid}")
        assert t.user_attrs["epochs_run"] == 20 == len(t.user_attrs["lr_curve"])
    assert "pack of 4 (K=4)" in second.err
