"""The stale-trial sweep and the claim/finish races on PostgreSQL, driven in-process.

These play the storage calls a worker makes, with crashes placed between them
by simply not making the next call, and check what the sweep (as the service
calls it: :func:`storage._trials.sweep_stale_trials`) repairs.
"""

from __future__ import annotations

import time

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.storage._tables import trial_results, trial_runs
from lrsearch.storage._trials import sweep_stale_trials
from tests.distributed_tests.conftest import assert_exact_budget, trials_of

pytestmark = pytest.mark.postgres


def _study(pg: storage.Backend, record: storage.StudyRecord) -> optuna.Study:
    return storage.load_optuna_study(pg, record)


def _claim(pg: storage.Backend, study: optuna.Study) -> optuna.Trial:
    trial = storage.claim_trial(pg, study, worker="elsewhere:1", device="cpu")
    assert trial is not None
    trial.suggest_float("learning_rate", 0.01, 0.1)
    return trial


def _result_row(pg: storage.Backend, trial_id: int) -> dict[str, object] | None:
    with pg.engine.connect() as conn:
        row = conn.execute(
            sa.select(trial_results).where(trial_results.c.trial_id == trial_id)
        ).first()
    return None if row is None else dict(row._mapping)


def test_sweep_fails_a_silent_trial_after_grace_and_enqueues_its_retry(
    pg: storage.Backend, make_study
) -> None:
    record = make_study(n_trials=1)
    study = _study(pg, record)
    trial = _claim(pg, study)
    assert sweep_stale_trials(pg, grace_s=0.5, study=record.name) == {}
    time.sleep(0.7)
    assert sweep_stale_trials(pg, grace_s=0.5, study=record.name) == {record.name: [0]}

    failed, retry = trials_of(pg, record.name)
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["error"] == "stale: no heartbeat for 0.5 s"
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs == {"retry_of": 0, "attempt": 1}
    assert _result_row(pg, trial._trial_id)["retried"] is True  # type: ignore[index]
    # The dead worker's heartbeat, were it to come back, learns the trial is gone.
    assert storage.heartbeat(pg, trial._trial_id) is False
    # The retry runs with the same parameters and the study ends on budget.
    again = _claim(pg, study)
    assert again.number == 1
    assert again.params == failed.params
    storage.finish_trial(pg, study, again, state=TrialState.COMPLETE, value=0.5)
    assert_exact_budget(pg, record)


def test_a_finish_after_the_sweep_records_nothing(pg: storage.Backend, make_study) -> None:
    record = make_study(n_trials=2)
    study = _study(pg, record)
    trial = _claim(pg, study)
    time.sleep(0.3)
    assert sweep_stale_trials(pg, grace_s=0.1, study=record.name) == {record.name: [0]}
    before = _result_row(pg, trial._trial_id)
    # The "dead" worker was only slow; its late result must not overwrite the FAIL
    # (which would count the trial twice: as finished and as retried).
    assert storage.finish_trial(pg, study, trial, state=TrialState.COMPLETE, value=0.9) is None
    assert trials_of(pg, record.name)[0].state == TrialState.FAIL
    assert _result_row(pg, trial._trial_id) == before
    with pg.engine.connect() as conn:
        counts = storage.budget_counts(conn, record)
    assert (counts.total, counts.retried, counts.waiting, counts.remaining) == (2, 1, 1, 1)


def test_a_claim_that_died_before_committing_is_retried_at_once(
    pg: storage.Backend, make_study
) -> None:
    record = make_study(n_trials=1)
    study = _study(pg, record)
    # What claim_trial does up to the crash: Optuna's ask is committed, our run
    # row is not. No heartbeat ever existed, so no grace period applies.
    study.ask()
    assert sweep_stale_trials(pg, grace_s=3600, study=record.name) == {record.name: [0]}
    orphan, retry = trials_of(pg, record.name)
    assert orphan.user_attrs["error"] == "stale: its claim never completed"
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs["retry_of"] == 0


def test_a_finish_whose_summary_row_was_lost_is_backfilled(pg: storage.Backend, make_study) -> None:
    record = make_study(n_trials=1)
    study = _study(pg, record)
    trial = _claim(pg, study)
    # The worker died between Optuna's tell and our summary row.
    study.tell(trial, 0.75)
    assert _result_row(pg, trial._trial_id) is None
    assert sweep_stale_trials(pg, grace_s=3600, study=record.name) == {}
    row = _result_row(pg, trial._trial_id)
    assert row is not None
    assert row["state"] == "COMPLETE"
    assert row["value"] == 0.75
    with pg.engine.connect() as conn:
        left = conn.execute(
            sa.select(trial_runs.c.trial_id).where(trial_runs.c.trial_id == trial._trial_id)
        ).first()
    assert left is None
    assert_exact_budget(pg, record)


def test_retries_stop_at_max_retries_and_the_failure_counts(
    pg: storage.Backend, make_study
) -> None:
    record = make_study(n_trials=1, max_retries=1)
    study = _study(pg, record)
    for _ in range(2):
        trial = _claim(pg, study)
        assert storage.give_back(
            pg, study, trial._trial_id, reason="interrupted: test", definition=record.definition
        )
    assert storage.claim_trial(pg, study, worker="elsewhere:1") is None
    trials = assert_exact_budget(pg, record)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert trials[1].user_attrs["retry_of"] == 0
