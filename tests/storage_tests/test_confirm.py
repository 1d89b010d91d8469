"""Confirmed winners on real SQLite and PostgreSQL.

A real worker trains a small synthetic study to its end, confirmation phase
included; the enqueueing is checked for idempotence with two claimers at once
and after a crash between the enqueued trials and the marker.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import optuna
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import make_pruner, parse_definition, sample_config
from lrsearch.storage._budget import CONFIRMATION_MARKER
from lrsearch.storage._confirm import enqueue_confirmations
from lrsearch.storage._lock import study_lock
from lrsearch.workers.loop import WorkerOptions, run_worker
from lrsearch.workers.training import train_seed

SCHEDULES = ["step", "cosine", "exponential"]


def _definition(name: str, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": name,
        "task": "synthetic",
        "objective": {"metric": "val_loss"},
        "budget": {"n_trials": 8, "max_epochs": 2},
        "sampler": {"type": "random", "seed": 3},
        "pruner": {"type": "none"},
        "search_space": {"schedules": SCHEDULES, "warmup_epochs": 0},
        "confirm": {"top_k": 1, "seeds": 2},
    }
    raw.update(overrides)
    return raw


def _name() -> str:
    return f"cf-{uuid.uuid4().hex[:12]}"


def _trials(
    backend: storage.Backend, record: storage.StudyRecord
) -> list[optuna.trial.FrozenTrial]:
    return storage.load_optuna_study(backend, record).get_trials(deepcopy=False)


def _play(backend: storage.Backend, record: storage.StudyRecord, values: list[float]) -> list[int]:
    """Claim, sample and complete one search trial per value (the sampler picks params)."""
    study = storage.load_optuna_study(backend, record)
    numbers = []
    for value in values:
        trial = storage.claim_trial(backend, study, worker="w:1", device="cpu")
        assert trial is not None
        sample_config(trial, record.definition)
        storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=value)
        numbers.append(trial.number)
    return numbers


def test_default_confirm_is_decided_and_stored_in_the_definition() -> None:
    big = parse_definition({"name": "a", "task": "synthetic", "budget": {"n_trials": 30}})
    small = parse_definition({"name": "a", "task": "synthetic", "budget": {"n_trials": 29}})
    assert big.model_dump(mode="json")["confirm"] == {"top_k": 1, "seeds": 2}
    assert small.model_dump(mode="json")["confirm"] == {"top_k": 0, "seeds": 0}
    # What was stored is what runs: re-validating keeps it, whatever the budget.
    again = parse_definition({**big.model_dump(mode="json"), "budget": {"n_trials": 5}})
    assert again.confirm == big.confirm


def test_a_worker_runs_the_search_then_the_confirmations(storage_url: str) -> None:
    backend = storage.open_backend(storage_url)
    try:
        record = storage.create_study(backend, parse_definition(_definition(_name())))
        options = WorkerOptions(
            storage_url=storage_url,
            study=record.name,
            device="cpu",
            idle_exit=2.0,
            poll_interval=0.1,
            install_signal_handlers=False,
        )
        run_worker(options)
        trials = _trials(backend, record)
        search = [t for t in trials if "confirmation_of" not in t.user_attrs]
        confirm = [t for t in trials if "confirmation_of" in t.user_attrs]
        assert len(search) == 8  # no failures here, so the budget rule is a plain count
        assert all(t.state == TrialState.COMPLETE for t in trials)
        by_number = {t.number: t for t in search}
        winners = {
            s: min((t for t in search if t.params["schedule"] == s), key=lambda t: t.value or 0)
            for s in {t.params["schedule"] for t in search}
        }
        assert len(confirm) == len(winners) * 2
        assert sorted(t.user_attrs["confirmation_of"] for t in confirm) == sorted(
            w.number for w in winners.values() for _ in range(2)
        )
        for t in confirm:
            original = by_number[t.user_attrs["confirmation_of"]]
            assert original.state == TrialState.COMPLETE
            assert t.params == original.params
            assert "retry_of" not in t.user_attrs
            assert train_seed(0, t.number) != train_seed(0, original.number)
        # Another seed trains to another loss for at least one confirmation.
        assert any(t.value != by_number[t.user_attrs["confirmation_of"]].value for t in confirm)
        with backend.engine.connect() as conn:
            counts = storage.budget_counts(conn, record)
            summary = storage.study_summary(conn, record)
        assert counts.finished - counts.retried == 8
        assert counts.confirmations == len(confirm)
        assert counts.done
        assert summary.done
        assert summary.counts["COMPLETE"] == 8
        assert summary.confirmations["COMPLETE"] == len(confirm)
    finally:
        backend.dispose()


def test_the_study_is_done_only_once_its_confirmations_are(storage_url: str) -> None:
    backend = storage.open_backend(storage_url)
    try:
        definition = _definition(_name(), budget={"n_trials": 2, "max_epochs": 2})
        record = storage.create_study(backend, parse_definition(definition))
        _play(backend, record, [0.5, 0.4])
        with backend.engine.connect() as conn:
            counts = storage.budget_counts(conn, record)
        assert counts.search_done
        assert counts.confirm_pending
        assert not counts.done
        study = storage.load_optuna_study(backend, record)
        first = storage.claim_trial(backend, study, worker="w:1", device="cpu")
        assert first is not None
        assert "confirmation_of" in first.user_attrs
        with backend.engine.connect() as conn:
            counts = storage.budget_counts(conn, record)
        assert not counts.done
        assert not counts.confirm_pending
        assert counts.remaining == 0
    finally:
        backend.dispose()


def test_two_claimers_at_once_enqueue_the_confirmations_once(storage_url: str) -> None:
    setup = storage.open_backend(storage_url)
    try:
        definition = _definition(_name(), budget={"n_trials": 4, "max_epochs": 2})
        record = storage.create_study(setup, parse_definition(definition))
        numbers = _play(setup, record, [0.5, 0.4, 0.3, 0.2])
    finally:
        setup.dispose()
    barrier = threading.Barrier(2)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def claimer() -> None:
        backend = storage.open_backend(storage_url)  # one engine each, like two workers
        try:
            study = storage.load_optuna_study(backend, record)
            barrier.wait()
            trial = storage.claim_trial(backend, study, worker="w:2", device="cpu")
            if trial is not None:
                claimed.append(trial.number)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            backend.dispose()

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    backend = storage.open_backend(storage_url)
    try:
        trials = _trials(backend, record)
        confirm = [t for t in trials if "confirmation_of" in t.user_attrs]
        schedules = {t.params["schedule"] for t in trials if t.number in numbers}
        assert len(confirm) == 2 * len(schedules)
        assert len(claimed) == 2
        assert set(claimed) <= {t.number for t in confirm}
        marker = backend.optuna_storage.get_study_user_attrs(record.study_id)
        assert marker[CONFIRMATION_MARKER]["seeds"] == 2
    finally:
        backend.dispose()


def test_a_crash_before_the_marker_tops_up_instead_of_doubling(storage_url: str) -> None:
    backend = storage.open_backend(storage_url)
    try:
        definition = _definition(_name(), budget={"n_trials": 3, "max_epochs": 2})
        record = storage.create_study(backend, parse_definition(definition))
        numbers = _play(backend, record, [0.5, 0.4, 0.3])
        study = storage.load_optuna_study(backend, record)
        # What a claimer that died mid-enqueue leaves: one confirmation, no marker.
        crashed = _trials(backend, record)[numbers[2]]  # 0.3: its type's winner
        study.enqueue_trial(dict(crashed.params), user_attrs={"confirmation_of": numbers[2]})
        trial = storage.claim_trial(backend, study, worker="w:1", device="cpu")
        assert trial is not None
        assert "confirmation_of" in trial.user_attrs
        per_original: dict[int, int] = {}
        for t in _trials(backend, record):
            if "confirmation_of" in t.user_attrs:
                of = t.user_attrs["confirmation_of"]
                per_original[of] = per_original.get(of, 0) + 1
        schedules = {t.params["schedule"] for t in _trials(backend, record) if t.number in numbers}
        assert len(per_original) == len(schedules)
        assert set(per_original.values()) == {2}  # topped up to `seeds`, never beyond
        with backend.engine.connect() as conn:
            assert not storage.budget_counts(conn, record).confirm_pending
        # Once the marker is written, nobody enqueues again.
        with study_lock(backend, record.study_id) as conn:
            assert enqueue_confirmations(backend, study, record, conn) == 0
    finally:
        backend.dispose()


def test_a_study_without_confirm_ends_with_its_search(storage_url: str) -> None:
    backend = storage.open_backend(storage_url)
    try:
        definition = _definition(_name(), budget={"n_trials": 2, "max_epochs": 2})
        definition["confirm"] = {"top_k": 0, "seeds": 2}
        record = storage.create_study(backend, parse_definition(definition))
        _play(backend, record, [0.5, 0.4])
        study = storage.load_optuna_study(backend, record)
        assert storage.claim_trial(backend, study, worker="w:1", device="cpu") is None
        with backend.engine.connect() as conn:
            assert storage.budget_counts(conn, record).done
    finally:
        backend.dispose()


def test_the_schedule_aware_pruner_never_prunes_a_confirmation() -> None:
    definition = parse_definition(
        _definition("p", objective={"metric": "val_accuracy"}, pruner={"type": "median"})
    )
    pruner = make_pruner(definition)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    params = {"schedule": "step", "learning_rate": 0.1}
    dists = {
        "schedule": optuna.distributions.CategoricalDistribution(SCHEDULES),
        "learning_rate": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
    }
    for _ in range(6):  # past the median pruner's startup trials, all at 0.9
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=dists, value=0.9, intermediate_values={0: 0.9}
            )
        )
    for attrs, expected in (({}, True), ({"confirmation_of": 0}, False)):
        low = optuna.trial.create_trial(
            params=params,
            distributions=dists,
            state=TrialState.RUNNING,
            user_attrs=attrs,
            intermediate_values={0: 0.1},
        )
        assert bool(pruner.prune(study, low)) is expected
