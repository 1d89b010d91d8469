"""The dashboard fixtures' trials are the same on every run, whatever the process id.

The worker salts a seeded sampler with its process id, so trials it samples
differ from run to run (a test once found 2 pruned trials where it expected
3). The fixtures therefore enqueue complete configurations: the worker must
have run exactly those, in order, and sampled nothing.
"""

from __future__ import annotations

import optuna

from lrsearch import storage
from tests.dashboard_tests.conftest import DashboardSite, fixed_params


def test_every_fixture_trial_ran_its_enqueued_configuration(site: DashboardSite) -> None:
    for role in ("done", "live"):
        record = storage.get_study(site.backend, site.studies[role])
        rdb = optuna.storages.RDBStorage(site.storage_url)
        try:
            trials = optuna.load_study(study_name=record.optuna_name, storage=rdb).get_trials()
        finally:
            rdb.engine.dispose()
        expected = fixed_params(record.definition)
        assert len(expected) == record.n_trials
        ran = [t for t in trials if t.state != optuna.trial.TrialState.WAITING]
        assert ran, role
        for t in sorted(ran, key=lambda t: t.number):
            assert t.params == expected[t.number], (role, t.number)
