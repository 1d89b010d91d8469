"""``lrsearch best --task NAME`` and the PyTorch column of ``lrsearch best NAME``, over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from lrsearch import storage
from tests.cli_tests.helpers import Live, run, write
from tests.service_tests.helpers import drive_trials

STUDY = """\
name: {name}
task: synthetic
objective: {{metric: {metric}}}
budget: {{n_trials: 6, max_epochs: 2}}
sampler: {{type: random, seed: {seed}}}
search_space:
  schedules: [step, cyclic]
"""


def _submit_and_run(live: Live, tmp_path: Path, name: str, metric: str, seed: int) -> None:
    file = write(tmp_path / f"{name}.yaml", STUDY.format(name=name, metric=metric, seed=seed))
    assert run(live, "submit", str(file)).exit_code == 0
    backend = storage.open_backend(live.storage_url)
    try:
        drive_trials(backend, storage.get_study(backend, name), outcomes=["COMPLETE"] * 6)
    finally:
        backend.dispose()


def test_best_task_prints_each_directions_best_schedules(live: Live, tmp_path: Path) -> None:
    _submit_and_run(live, tmp_path, "acc-a", "val_accuracy", 1)
    _submit_and_run(live, tmp_path, "acc-b", "val_accuracy", 2)
    _submit_and_run(live, tmp_path, "loss-a", "val_loss", 3)
    as_json = run(live, "best", "--task", "synthetic", "--json", key=live.read_key)
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    table = run(live, "best", "--task", "synthetic", key=live.read_key)
    assert table.exit_code == 0, table.output
    text = table.stdout
    assert "maximize (studies that maximize their metric)" in text
    assert "minimize (studies that minimize their metric)" in text
    # Every trial the service returned is a row, with its study, number and scheduler.
    rows = [line.split() for line in text.splitlines()]
    for item in body["items"]:
        for t in item["trials"]:
            assert any(
                t["study"] in r and str(t["number"]) in r and f"{t['value']:.4f}" in r for r in rows
            ), t
            assert t["settings"]["call"] in text
    assert {t["study"] for i in body["items"] for t in i["trials"]} >= {"acc-a", "loss-a"}


def test_best_task_needs_exactly_one_of_name_and_task(live: Live) -> None:
    neither = run(live, "best")
    assert neither.exit_code == 2
    assert "NAME or --task" in neither.output
    both = run(live, "best", "some-study", "--task", "synthetic")
    assert both.exit_code == 2
    pytorch = run(live, "best", "--task", "synthetic", "--as", "pytorch")
    assert pytorch.exit_code == 2


def test_best_task_without_studies_says_so(live: Live) -> None:
    result = run(live, "best", "--task", "synthetic")
    assert result.exit_code == 0
    assert "No completed trial in any of your studies of task 'synthetic'" in result.stdout


def test_best_name_shows_each_winners_pytorch_scheduler(live: Live, tmp_path: Path) -> None:
    _submit_and_run(live, tmp_path, "with-code", "val_accuracy", 4)
    schedules = json.loads(run(live, "best", "with-code", "--json").stdout)["schedules"]
    lines = run(live, "best", "with-code").stdout.splitlines()
    assert lines[1].endswith("PyTorch (learning rates absolute)")
    for s, line in zip(schedules, lines[3:], strict=True):
        assert line.split()[0] == s["schedule"]
        if s["best"] is not None:
            assert line.endswith(s["settings"]["call"])
