"""``lrsearch best NAME`` shows the confirmed mean once a study's confirmations ran."""

from __future__ import annotations

import re
from pathlib import Path

from lrsearch import storage
from tests.cli_tests.helpers import Live, run, write
from tests.service_tests.helpers import drive_trials

STUDY = """\
name: confirmed
task: synthetic
budget: {n_trials: 2, max_epochs: 2}
sampler: {type: random, seed: 4}
pruner: {type: none}
search_space: {schedules: [step]}
confirm: {top_k: 1, seeds: 1}
"""


def test_best_table_has_the_confirmed_column(live: Live, tmp_path: Path) -> None:
    assert run(live, "submit", str(write(tmp_path / "s.yaml", STUDY))).exit_code == 0
    before = run(live, "best", "confirmed", key=live.read_key)
    assert before.exit_code == 0, before.output
    assert "confirmed mean" not in before.stdout
    backend = storage.open_backend(live.storage_url)
    try:
        done = drive_trials(
            backend, storage.get_study(backend, "confirmed"), outcomes=["COMPLETE"] * 4
        )
    finally:
        backend.dispose()
    assert len(done.numbers("COMPLETE")) == 3  # 2 search trials + 1 confirmation, then none
    table = run(live, "best", "confirmed", key=live.read_key)
    assert table.exit_code == 0, table.output
    assert "confirmed mean±std (n)" in table.stdout
    row = next(line for line in table.stdout.splitlines() if line.startswith("step"))
    # The original and its one confirmation, then the winner's PyTorch scheduler.
    assert re.search(r"\d\.\d{4}±\d\.\d{4} \(2\)  StepLR\(", row), row
