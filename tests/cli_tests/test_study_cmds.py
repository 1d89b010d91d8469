"""``lrsearch list``, ``trials``, ``pause``/``resume``/``cancel``, ``enqueue``, ``wait``.

Against the real service over HTTP (the ``live`` fixture: uvicorn on a free
port, a temporary SQLite file); the service's own storage tests cover PostgreSQL.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import uvicorn

from lrsearch import storage
from lrsearch.cli.main import app
from lrsearch.cli.study_cmds import parse_params
from lrsearch.service import Settings, create_app
from tests.cli_tests.helpers import Live, run, write
from tests.service_tests.helpers import drive_trials

STUDY = """\
name: {name}
task: synthetic
budget: {{n_trials: 4, max_epochs: 3}}
sampler: {{type: random, seed: 2}}
search_space:
  schedules: [step, cosine]
"""


def submit(live: Live, tmp_path: Path, name: str) -> None:
    result = run(live, "submit", str(write(tmp_path / f"{name}.yaml", STUDY.format(name=name))))
    assert result.exit_code == 0, result.output


@pytest.fixture
def backend(live: Live) -> Iterator[storage.Backend]:
    opened = storage.open_backend(live.storage_url)
    yield opened
    opened.dispose()


def test_list_shows_state_progress_best_and_a_failed_reason(
    live: Live, tmp_path: Path, backend: storage.Backend
) -> None:
    submit(live, tmp_path, "list-ok")
    submit(live, tmp_path, "list-bad")
    drive_trials(backend, storage.get_study(backend, "list-ok"), outcomes=["COMPLETE", "PRUNED"])
    best = max(
        t.value
        for t in storage.load_optuna_study(
            backend, storage.get_study(backend, "list-ok")
        ).get_trials()
        if t.value is not None and t.state.name == "COMPLETE"
    )
    with backend.engine.begin() as conn:
        assert storage.mark_study_failed(
            conn, storage.get_study(backend, "list-bad").study_id, "every trial fails: OOM"
        )

    result = run(live, "list", key=live.read_key)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "state", "progress", "running", "failed", "best", "task"]
    ok = next(line for line in lines if line.startswith("list-ok "))
    assert ok.split() == ["list-ok", "running", "2/4", "0", "0", f"{best:.4f}", "synthetic"]
    bad = lines.index(next(line for line in lines if line.startswith("list-bad ")))
    assert lines[bad].split()[1:3] == ["failed", "0/4"]
    assert lines[bad + 1].strip() == "reason: every trial fails: OOM"


def test_list_json_is_one_document_on_stdout(live: Live, tmp_path: Path) -> None:
    submit(live, tmp_path, "json-a")
    submit(live, tmp_path, "json-b")
    result = run(live, "list", "--json", key=live.read_key)
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [s["name"] for s in items] == ["json-b", "json-a"]  # newest first
    assert items[0]["n_trials"] == 4
    limited = json.loads(run(live, "list", "--json", "--limit", "1").stdout)
    assert [s["name"] for s in limited] == ["json-b"]


def test_trials_filters_by_state_and_schedule(
    live: Live, tmp_path: Path, backend: storage.Backend
) -> None:
    submit(live, tmp_path, "tr")
    outcomes = ["COMPLETE", "PRUNED", "COMPLETE", "FAIL"]
    drive_trials(backend, storage.get_study(backend, "tr"), outcomes=outcomes)
    every = json.loads(run(live, "trials", "tr", "--json").stdout)
    assert [t["state"] for t in every] == outcomes

    complete = run(live, "trials", "tr", "--state", "complete")
    assert complete.exit_code == 0, complete.output
    rows = complete.stdout.splitlines()[2:]
    assert [r.split()[:2] for r in rows] == [["0", "COMPLETE"], ["2", "COMPLETE"]]

    two = json.loads(
        run(live, "trials", "tr", "--state", "PRUNED", "--state", "FAIL", "--json").stdout
    )
    assert [t["number"] for t in two] == [1, 3]

    schedule = every[0]["schedule"]
    same = json.loads(run(live, "trials", "tr", "--schedule", schedule, "--json").stdout)
    assert [t["number"] for t in same] == [t["number"] for t in every if t["schedule"] == schedule]
    one = json.loads(
        run(live, "trials", "tr", "--schedule", schedule, "--limit", "1", "--json").stdout
    )
    assert [t["number"] for t in one] == [same[0]["number"]]


def test_trials_lists_every_bad_option_at_once(live: Live) -> None:
    result = run(live, "trials", "tr", "--state", "DONE", "--order", "speed")
    assert result.exit_code == 2
    assert "--state DONE" in result.stderr
    assert "--order speed" in result.stderr


def test_pause_resume_cancel(live: Live, tmp_path: Path) -> None:
    submit(live, tmp_path, "ctl")
    assert run(live, "pause", "ctl").stdout.strip() == "study ctl is now paused"
    assert run(live, "resume", "ctl").stdout.strip() == "study ctl is now running"
    assert run(live, "cancel", "ctl").stdout.strip() == "study ctl is now cancelled"
    again = run(live, "resume", "ctl")
    assert again.exit_code == 1
    assert "409" in again.stderr
    missing = run(live, "pause", "no-such-study")
    assert missing.exit_code == 1
    assert "404" in missing.stderr


def test_enqueue_key_value_pairs_fixes_only_those(
    live: Live, tmp_path: Path, backend: storage.Backend
) -> None:
    submit(live, tmp_path, "enq")
    result = run(live, "enqueue", "enq", "schedule=cosine", "learning_rate=0.05")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "enqueued in enq: learning_rate=0.05, schedule=cosine; the rest sampled"
    )
    drive_trials(backend, storage.get_study(backend, "enq"), outcomes=["COMPLETE"])
    trial = json.loads(run(live, "trials", "enq", "--json").stdout)[0]
    assert (trial["schedule"], trial["learning_rate"]) == ("cosine", 0.05)


def test_enqueue_json_and_every_problem(live: Live, tmp_path: Path) -> None:
    submit(live, tmp_path, "enqj")
    ok = run(live, "enqueue", "enqj", '{"schedule": "step", "step.step_size": 2}')
    assert ok.exit_code == 0, ok.output
    bad = run(live, "enqueue", "enqj", "learning_rate=9", "batch_size=48")
    assert bad.exit_code == 2
    assert "params.learning_rate" in bad.stderr
    assert "params.batch_size" in bad.stderr
    words = run(live, "enqueue", "enqj", "schedule", "x=1", "x=2")
    assert words.exit_code == 2
    assert "'schedule': expected key=value" in words.stderr
    assert "x: given twice" in words.stderr


def test_parse_params_reads_json_values_and_keeps_text() -> None:
    params, problems = parse_params(["schedule=cosine", "learning_rate=1e-3", "batch_size=64"])
    assert problems == []
    assert params == {"schedule": "cosine", "learning_rate": 0.001, "batch_size": 64}
    assert parse_params(["[1, 2]"]) == ({}, ["'[1, 2]': expected key=value or one JSON object"])
    assert parse_params(["{1"])[1][0].startswith("PARAMS is not valid JSON")


def test_wait_returns_once_the_service_is_healthy(live: Live) -> None:
    result = run(live, "wait", "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert "is ready" in result.stderr


def test_wait_gives_up_after_its_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        nobody = Live(f"http://127.0.0.1:{port}", "", "", "")
        result = run(nobody, "wait", "--timeout", "0.3", "--interval", "0.1")
    assert result.exit_code == 1
    assert f"no healthy service at http://127.0.0.1:{port} after 0.3 s" in result.stderr


def test_status_and_best_json_are_one_document_on_stdout(
    live: Live, tmp_path: Path, backend: storage.Backend
) -> None:
    submit(live, tmp_path, "js")
    drive_trials(backend, storage.get_study(backend, "js"), outcomes=["COMPLETE", "COMPLETE"])
    status = json.loads(run(live, "status", "js", "--json", key=live.read_key).stdout)
    assert (status["name"], status["finished"], status["n_trials"]) == ("js", 2, 4)
    best = json.loads(run(live, "best", "js", "--json", key=live.read_key).stdout)
    assert best["study"] == "js"
    table = run(live, "best", "js", key=live.read_key).stdout.splitlines()[3:]
    assert [s["schedule"] for s in best["schedules"]] == [line.split()[0] for line in table]
    mixed = run(live, "best", "js", "--json", "--as", "pytorch")
    assert mixed.exit_code == 2
    assert mixed.stdout == ""


def test_the_readme_service_example_submits_as_typed(live: Live) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "digits-schedules.yaml"
    readme = (example.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "lrsearch submit examples/digits-schedules.yaml" in readme
    result = run(live, "submit", str(example))
    assert result.exit_code == 0, result.output
    assert "created study digits-schedules: task digits-mlp, 60 trials x up to 20 epochs" in (
        result.stdout
    )


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if hasattr(command, "commands"):  # a group (typer ships its own click)
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path


def test_every_command_option_and_argument_has_help() -> None:
    root = typer.main.get_command(app)
    missing = []
    for path in _leaves(root):
        command: Any = root
        for name in path:
            command = command.commands[name]
        if not command.help:
            missing.append(" ".join(path))
        missing += [
            f"{' '.join(path)} {p.name}"
            for p in command.params
            if p.name != "help" and not getattr(p, "help", None)
        ]
    assert {"list", "trials", "enqueue", "wait", "pause"} <= {p[0] for p in _leaves(root)}
    assert missing == []


def test_wait_polls_until_a_late_service_starts(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app_ = create_app(Settings(storage=f"sqlite:///{tmp_path / 'late.db'}"))
    server = uvicorn.Server(uvicorn.Config(app_, host="127.0.0.1", port=port, log_level="warning"))

    def start_late() -> None:
        time.sleep(1.0)
        server.run()

    thread = threading.Thread(target=start_late, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        late = Live(f"http://127.0.0.1:{port}", "", "", "")
        result = run(late, "wait", "--timeout", "30", "--interval", "0.1")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 1.0
    assert f"service at http://127.0.0.1:{port} is ready" in result.stderr
