"""The result-query API is exported from :mod:`storage` under the names the service uses."""

from __future__ import annotations

from lrsearch import storage

RESULT_API = {
    "InvalidCursorError",
    "MAX_CURVES",
    "MAX_PAGE_SIZE",
    "ScheduleStats",
    "StudySummary",
    "TrialDetail",
    "TrialNotFoundError",
    "TrialOrder",
    "TrialRow",
    "best_per_schedule",
    "best_trial",
    "curves",
    "list_trials",
    "study_summary",
    "top_trials_per_schedule",
    "trial_counts_by_state",
    "trial_detail",
}


def test_result_api_is_exported() -> None:
    assert not RESULT_API - set(storage.__all__)
    for name in RESULT_API:
        assert getattr(storage, name) is not None


def test_error_hierarchy() -> None:
    assert issubclass(storage.InvalidCursorError, storage.StorageError)
    assert issubclass(storage.InvalidCursorError, ValueError)
    assert issubclass(storage.TrialNotFoundError, storage.StorageError)
    err = storage.TrialNotFoundError("s", 3)
    assert (err.study, err.number) == ("s", 3)
