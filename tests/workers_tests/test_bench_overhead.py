"""bench/overhead.py's seeding and bench/overhead_report.py's figures.

``--start-at`` fills each side's study with finished trials before the timed
part; those trials must be the same trials the in-memory run made (params,
states, values, every reported epoch, the pruner's rung attributes), numbered
from 0 as if they had run in the study, and on lrsearch's side every one must
have its summary row, or the first worker would spend its first claim
writing them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna
import pytest
import sqlalchemy as sa

from lrsearch import storage

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    """A bench script as a module (bench/ is a folder of scripts, not a package)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        path = ROOT / "bench" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "bench"))


def _shape(trial: optuna.trial.FrozenTrial) -> tuple[Any, ...]:
    return (
        trial.number,
        trial.state,
        trial.value,
        trial.params,
        trial.intermediate_values,
        trial.system_attrs,
    )


@pytest.mark.parametrize("side", ["lrsearch", "optuna"])
def test_seeded_trials_are_the_in_memory_run_copied(sqlite_url: str, side: str) -> None:
    overhead = _load("overhead")
    name = f"seed-{side}"
    storage.open_backend(sqlite_url).dispose()
    overhead._create(side, sqlite_url, name, 60)
    overhead.seed_study(sqlite_url, name, 40)
    copied = optuna.load_study(study_name=name, storage=sqlite_url).get_trials()
    expected = overhead.seeded_trials(name, 40)
    assert [_shape(t) for t in copied] == [_shape(t) for t in expected]
    states = {t.state for t in copied}
    # Hyperband pruned some and let some finish; the rungs they reached are recorded.
    assert states == {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert any(k.startswith("completed_rung_") for t in copied for k in t.system_attrs)
    # The next trial continues the numbering.
    study = optuna.load_study(study_name=name, storage=sqlite_url)
    assert study.ask().number == 40
    if side == "lrsearch":
        from lrsearch.storage._stale import _unrecorded_trials
        from lrsearch.storage._tables import trial_results

        backend = storage.open_backend(sqlite_url)
        try:
            record = storage.get_study(backend, name)
            with backend.engine.connect() as conn:
                assert _unrecorded_trials(conn, record.study_id) == []
                summary = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(trial_results)
                    .where(trial_results.c.study_id == record.study_id)
                ).scalar_one()
            assert summary == 40
        finally:
            backend.dispose()


def test_report_places_fifths_at_study_size_and_compares_sides(tmp_path: Path) -> None:
    report = _load("overhead_report")

    def fifth(cpu: float) -> dict[str, Any]:
        return {"cpu_ms": cpu, "xacts_per_trial": 50, "wall_ms": cpu * 1.2, "join_s": 1.0}

    result = {
        "trials": 500,
        "start_at": 9500,
        "fifths": {
            "lrsearch": [fifth(c) for c in (100, 110, 120, 130, 140)],
            "optuna": [fifth(c) for c in (200, 200, 200, 200, 280)],
        },
    }
    rows = report.points(result)
    assert [r["size"] for r in rows] == [9550, 9650, 9750, 9850, 9950]
    assert [round(r["ratio"], 2) for r in rows] == [0.5, 0.55, 0.6, 0.65, 0.5]
    text = report.table(rows)
    assert "| 9,950 | 140 | 280 | 0.50 |" in text
    png = tmp_path / "o.png"
    assert report.plot(rows, png) == f"plot: {png}"
    assert png.stat().st_size > 1000
