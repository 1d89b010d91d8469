"""`lrsearch demo` end to end on a temporary SQLite file, as a newcomer runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from lrsearch.search_space import SCHEDULE_TYPES


@pytest.mark.slow
def test_demo_runs_the_whole_loop_and_prints_the_best_schedules(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LRSEARCH_STORAGE"}
    result = subprocess.run(
        [sys.executable, "-m", "lrsearch.cli.main", "demo", "--trials", "10"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    # The embedded default: a SQLite file in the working directory.
    assert (tmp_path / "lrsearch.db").exists()
    assert "finished 10 trials" in out
    table = out[out.index("Best trial per schedule type") :].splitlines()
    rows = {line.split()[0] for line in table[3:] if line.strip()}
    assert rows == set(SCHEDULE_TYPES)
    # Progress lines, one per trial.
    assert sum(1 for line in out.splitlines() if line.startswith("[")) == 10
    summaries = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'lrsearch.db'}")
    assert len(summaries) == 1
    assert summaries[0].n_trials == 10
