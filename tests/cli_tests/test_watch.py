"""``lrsearch status NAME --watch``: the rendering on fixed data, the command on a real server."""

from __future__ import annotations

import datetime
import json
import os
import pty
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from lrsearch import storage
from lrsearch.cli.watch import (
    RateMeter,
    duration,
    rate_text,
    redraw,
    render_block,
    render_line,
)
from lrsearch.search_space import sample_config
from tests.cli_tests.helpers import Live, run, write
from tests.service_tests.helpers import drive_trials

CREATED = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def study(**fields: Any) -> dict[str, Any]:
    """A study as GET /studies/{name} returns it, reduced to what the display reads."""
    base: dict[str, Any] = {
        "name": "s",
        "state": "running",
        "n_trials": 10,
        "max_epochs": 20,
        "finished": 4,
        "created_at": CREATED.isoformat(),
        "counts": {"RUNNING": 2, "WAITING": 0, "COMPLETE": 3, "PRUNED": 1, "FAIL": 0},
        "best": {"value": 0.91, "number": 2, "schedule": "cosine"},
    }
    return {**base, **fields}


RUNNING = [
    {"number": 5, "schedule": "step", "epochs_run": 3, "latest_value": 0.5,
     "worker": "gpu-1:7", "duration_s": 41.2},
    {"number": 6, "schedule": "cosine", "epochs_run": 0, "latest_value": None,
     "worker": None, "duration_s": None},
]  # fmt: skip


def test_block_shows_progress_rate_eta_and_each_running_trial() -> None:
    lines = render_block(study(), RUNNING, per_hour=12.0)
    assert lines[0].startswith("s [" + "#" * 12 + "-" * 18 + "] 4/10 finished (running 2")
    assert lines[0].endswith("running, best 0.9100 (#2 cosine)")
    assert lines[1] == "  12.0 trials/h, ETA 30 min for 6 trials"
    assert lines[2] == "  #5 step epoch 3/20 value 0.5000 on gpu-1:7 (41 s)"
    assert lines[3] == "  #6 cosine epoch 0/20 value - on ?"
    assert len(lines) == 4


def test_block_caps_the_running_trials_it_lists() -> None:
    many = [{**RUNNING[0], "number": n} for n in range(12)]
    lines = render_block(study(), many, per_hour=None)
    assert lines[-1] == "  ... and 2 more running"
    assert len(lines) == 2 + 10 + 1


def test_plain_line_holds_the_same_facts() -> None:
    line = render_line(study(state="paused"), RUNNING[:1], per_hour=6.0)
    assert " paused, best 0.9100 (#2 cosine) | 6.0 trials/h, ETA paused for 6 trials | " in line
    assert line.endswith("running: #5 step epoch 3/20 value 0.5000 on gpu-1:7 (41 s)")


def test_rate_and_eta_texts() -> None:
    assert rate_text(study(), None) == "trials/h: not known yet (no finished trial)"
    assert rate_text(study(finished=10, state="finished"), 3.0) == "3.0 trials/h"
    assert [duration(s) for s in (45, 600, 3 * 3600)] == ["45 s", "10 min", "3.0 h"]


def test_rate_is_observed_once_a_trial_finishes_during_the_watch() -> None:
    meter = RateMeter()
    now = CREATED + datetime.timedelta(hours=2)
    meter.add(100.0, 4)
    assert meter.per_hour(study(), now) == 2.0  # 4 trials in the study's 2 hours
    meter.add(460.0, 4)
    assert meter.per_hour(study(), now) == 2.0  # nothing finished yet: still the study's age
    meter.add(1000.0, 7)
    assert meter.per_hour(study(finished=7), now) == 3 / 900 * 3600
    assert RateMeter().per_hour(study(finished=0), now) is None


def test_redraw_moves_up_over_what_it_drew_and_cuts_to_the_width() -> None:
    assert redraw(0, ["ab", "c"], 80) == "\x1b[Jab\nc\n"
    assert redraw(2, ["abcdef"], 4) == "\x1b[2F\x1b[Jabc\n"


STUDY = """\
name: {name}
task: synthetic
budget: {{n_trials: 4, max_epochs: 3}}
sampler: {{type: random, seed: 2}}
search_space:
  schedules: [step, cosine]
"""


def _lines(stream: IO[str], out: queue.Queue[str]) -> None:
    for line in stream:
        out.put(line)


def test_watch_into_a_pipe_prints_running_trials_and_ctrl_c_exits_0(
    live: Live, tmp_path: Path
) -> None:
    file = write(tmp_path / "w.yaml", STUDY.format(name="watched"))
    assert run(live, "submit", str(file)).exit_code == 0
    backend = storage.open_backend(live.storage_url)
    try:
        record = storage.get_study(backend, "watched")
        drive_trials(backend, record, outcomes=["COMPLETE", "COMPLETE"])
        # A third trial that is mid-way: two epochs reported, not finished.
        trial = storage.claim_trial(
            backend, storage.load_optuna_study(backend, record), worker="host-a:1", device="cpu"
        )
        assert trial is not None
        schedule = sample_config(trial, record.definition).schedule.type
        trial.report(0.25, 0)
        trial.report(0.625, 1)
    finally:
        backend.dispose()

    env = {**os.environ, "LRSEARCH_API_URL": live.api_url, "LRSEARCH_API_KEY": live.read_key}
    command = [sys.executable, "-m", "lrsearch.cli.main", "status", "watched", "--watch"]
    with subprocess.Popen(
        [*command, "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            first = lines.get(timeout=60)
        finally:
            time.sleep(0.5)  # a few refreshes: the line must not repeat while nothing changes
            process.send_signal(signal.SIGINT)
            code = _wait_or_kill(process)
            reader.join(timeout=10)
        errors = process.stderr.read() if process.stderr else ""
    assert code == 0, errors
    assert "\x1b[" not in first  # no cursor codes into a pipe
    assert "watched [" in first
    assert "2/4 finished (running 1" in first
    assert " trials/h, ETA " in first
    assert f"running: #2 {schedule} epoch 2/3 value 0.6250 on host-a:1 (" in first
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    # Printed again only when a trial makes progress, not on every refresh.
    assert rest == []


def test_watch_json_prints_one_document_a_refresh(live: Live, tmp_path: Path) -> None:
    file = write(tmp_path / "j.yaml", STUDY.format(name="watched-json"))
    assert run(live, "submit", str(file)).exit_code == 0
    assert run(live, "cancel", "watched-json").exit_code == 0
    result = run(live, "status", "watched-json", "--watch", "--json", "--interval", "0.1")
    assert result.exit_code == 0, result.output
    (document,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert document["study"]["state"] == "cancelled"
    assert document["running"] == []
    plain = json.loads(run(live, "status", "watched-json", "--json").stdout)
    assert plain["name"] == "watched-json"


def test_watch_on_a_terminal_redraws_in_place(live: Live, tmp_path: Path) -> None:
    file = write(tmp_path / "t.yaml", STUDY.format(name="watched-tty"))
    assert run(live, "submit", str(file)).exit_code == 0
    env = {**os.environ, "LRSEARCH_API_URL": live.api_url, "LRSEARCH_API_KEY": live.read_key}
    command = [sys.executable, "-m", "lrsearch.cli.main", "status", "watched-tty", "--watch"]
    primary, secondary = pty.openpty()  # a real terminal: isatty() is true in the child
    with subprocess.Popen(
        [*command, "--interval", "0.1"], stdout=secondary, stderr=subprocess.DEVNULL, env=env
    ) as process:
        os.close(secondary)
        seen = b""
        deadline = time.monotonic() + 60
        try:
            # Two redraws: the second moves the cursor up over the first.
            while seen.count(b"\x1b[J") < 2 and time.monotonic() < deadline:
                if select.select([primary], [], [], 1.0)[0]:
                    seen += os.read(primary, 4096)
        finally:
            process.send_signal(signal.SIGINT)
            code = _wait_or_kill(process)
            os.close(primary)
    assert code == 0
    text = seen.decode()
    first, second = text.split("\x1b[J")[1:3]
    assert first.startswith("watched-tty [")
    assert "trials/h: not known yet" in first
    # The display is 2 lines (no trial running): the redraw moves up exactly that far.
    assert first.endswith("\x1b[2F")
    assert second.startswith("watched-tty [")


def _wait_or_kill(process: subprocess.Popen[Any]) -> int | None:
    """The exit code, or ``None`` after killing a child that ignored the signal.

    Never blocks for good: leaving a ``with Popen`` block waits without a timeout.
    """
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
