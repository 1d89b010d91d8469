"""The studies one worker serves: their Optuna handles, kept samplers, and errors in a row.

Seeded samplers: the worker asks the storage for a sampler slot once per study
(``storage.sampler_slot``: 0, 1, 2... in the order workers first load the study)
and salts the definition's seed with it, so that no two workers of a study draw
the same configurations, while a study served by one worker replays the same
trials run to run (slot 0 is the seed unchanged). The sampler object, with its
random state, is kept across database reconnects: rebuilding it from the seed
would propose again the configurations it already proposed.

Failing studies: a study whose claim raises (its Optuna study is gone, its
sampler cannot be built, its sweep fails) is skipped for 2, 4, 8... seconds
(at most ``MAX_STUDY_SKIP_S``) with the reason logged, and marked ``failed``
after ``MAX_STUDY_ERRORS`` errors in a row, so that one broken study never
stops a worker from serving the others.
"""

from __future__ import annotations

import logging
import time

import optuna

from lrsearch import storage
from lrsearch.workers._loop_support import short_error

log = logging.getLogger("lrsearch.workers.loop")

# Errors in a row after which a study is marked failed; it is skipped meanwhile.
MAX_STUDY_ERRORS = 3
MAX_STUDY_SKIP_S = 60.0

_Kept = tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]


class StudyPool:
    """Optuna handles of the studies this worker serves, and how each has been behaving."""

    def __init__(self) -> None:
        # On the current connection; dropped on reconnect.
        self._studies: dict[int, optuna.Study] = {}
        # Kept across reconnects: they hold the samplers' random state.
        self._kept: dict[int, _Kept] = {}
        # Per study id: errors in a row, and when the study may be tried again.
        self._errors: dict[int, tuple[int, float]] = {}

    def drop_connection(self) -> None:
        """Forget the handles bound to a connection that is gone; keep the samplers."""
        self._studies.clear()

    def study(self, backend: storage.Backend, record: storage.StudyRecord) -> optuna.Study:
        """The study's Optuna handle: cached, or rebuilt around its kept sampler."""
        cached = self._studies.get(record.study_id)
        if cached is not None:
            return cached
        kept = self._kept.get(record.study_id)
        if kept is None:
            salt = 0
            if record.definition.sampler.seed is not None:
                salt = storage.sampler_slot(backend, record)
            study = storage.load_optuna_study(backend, record, seed_salt=salt)
            self._kept[record.study_id] = (study.sampler, study.pruner)
        else:
            study = optuna.load_study(
                study_name=record.optuna_name or record.name,
                storage=backend.optuna_storage,
                sampler=kept[0],
                pruner=kept[1],
            )
        self._studies[record.study_id] = study
        return study

    def may_try(self, record: storage.StudyRecord) -> bool:
        """False while the study is skipped after an error."""
        errors = self._errors.get(record.study_id)
        return errors is None or time.monotonic() >= errors[1]

    def succeeded(self, record: storage.StudyRecord) -> None:
        self._errors.pop(record.study_id, None)

    def failed_once(
        self, backend: storage.Backend, record: storage.StudyRecord, exc: Exception
    ) -> None:
        """Skip a study that raised, for longer each time; mark it failed after a few."""
        count = self._errors.get(record.study_id, (0, 0.0))[0] + 1
        skip = min(2.0**count, MAX_STUDY_SKIP_S)
        self._errors[record.study_id] = (count, time.monotonic() + skip)
        self._studies.pop(record.study_id, None)
        reason = f"{type(exc).__name__}: {short_error(exc)}"
        log.error(
            "study %s: %s (error %d in a row); skipping it for %.0f s",
            record.name,
            reason,
            count,
            skip,
            exc_info=exc,
        )
        if count < MAX_STUDY_ERRORS:
            return
        why = f"workers could not claim trials: {count} errors in a row, the last {reason}"
        try:
            with backend.engine.begin() as conn:
                marked = storage.mark_study_failed(conn, record.study_id, why)
        except Exception as mark_exc:
            log.error("could not mark study %s failed: %s", record.name, short_error(mark_exc))
            return
        if marked:
            log.error("study %s marked failed: %s", record.name, why)
