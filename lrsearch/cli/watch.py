"""``lrsearch status NAME --watch``: a live progress display of one study.

Each refresh reads the study and its running trials (with each one's latest
epoch and value) over REST. On a terminal the display is redrawn in place
(ANSI cursor-up and clear); into a pipe or file it prints one plain line
whenever a trial made progress, so logs stay readable. Ctrl-C ends it with exit
code 0: stopping to watch is not a failure.
"""

from __future__ import annotations

import datetime
import json
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import typer

from lrsearch.cli.client_cmds import _request, progress_line
from lrsearch.client._http import segment

# Reading each running trial's curve costs one request: a display shows at most this many.
MAX_RUNNING_SHOWN = 10
ENDED_STATES = ("finished", "cancelled", "failed")


@dataclass
class RateMeter:
    """Trials per hour: from what this watch saw finish, else since the study was created.

    The first estimate uses the study's age, which counts time it sat paused or
    without workers; once a trial finishes during the watch the observed rate
    (the workers running now) replaces it.
    """

    samples: list[tuple[float, int]] = field(default_factory=list)

    def add(self, at: float, finished: int) -> None:
        self.samples.append((at, finished))

    def per_hour(self, study: dict[str, Any], now: datetime.datetime) -> float | None:
        if len(self.samples) >= 2:
            (t0, f0), (t1, f1) = self.samples[0], self.samples[-1]
            if f1 > f0 and t1 > t0:
                return (f1 - f0) / (t1 - t0) * 3600
        finished = int(study["finished"])
        created = datetime.datetime.fromisoformat(str(study["created_at"]))
        if created.tzinfo is None:
            created = created.replace(tzinfo=datetime.UTC)
        hours = (now - created).total_seconds() / 3600
        return finished / hours if finished and hours > 0 else None


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``: precise enough for an ETA."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def rate_text(study: dict[str, Any], per_hour: float | None) -> str:
    """Trials per hour and the ETA of the budget's remaining trials."""
    remaining = max(0, int(study["n_trials"]) - int(study["finished"]))
    if study["state"] in ENDED_STATES:
        return f"{per_hour:.1f} trials/h" if per_hour else "ended"
    if per_hour is None:
        return "trials/h: not known yet (no finished trial)"
    eta = "paused" if study["state"] == "paused" else duration(remaining / per_hour * 3600)
    return f"{per_hour:.1f} trials/h, ETA {eta} for {remaining} trials"


def running_text(trial: dict[str, Any], max_epochs: int) -> str:
    """One running trial: number, schedule, epoch reached, latest value, worker, seconds."""
    value = trial.get("latest_value")
    value_s = "-" if value is None else f"{value:.4f}"
    seconds = trial.get("duration_s")
    return (
        f"#{trial['number']} {trial['schedule'] or '?'} epoch {trial['epochs_run']}/{max_epochs} "
        f"value {value_s} on {trial.get('worker') or '?'}"
        + ("" if seconds is None else f" ({seconds:.0f} s)")
    )


def render_block(
    study: dict[str, Any], running: list[dict[str, Any]], per_hour: float | None
) -> list[str]:
    """The terminal display: progress bar, rate and ETA, then one line per running trial."""
    lines = [progress_line(study), f"  {rate_text(study, per_hour)}"]
    shown = running[:MAX_RUNNING_SHOWN]
    lines += [f"  {running_text(t, int(study['max_epochs']))}" for t in shown]
    if len(running) > len(shown):
        lines.append(f"  ... and {len(running) - len(shown)} more running")
    return lines


def render_line(
    study: dict[str, Any], running: list[dict[str, Any]], per_hour: float | None
) -> str:
    """The same as one plain line, for a pipe or a log file."""
    line = f"{progress_line(study)} | {rate_text(study, per_hour)}"
    if running:
        shown = running[:MAX_RUNNING_SHOWN]
        line += " | running: " + "; ".join(running_text(t, int(study["max_epochs"])) for t in shown)
    return line


def redraw(previous: int, lines: list[str], width: int) -> str:
    """Escape codes that replace the last ``previous`` lines drawn with ``lines``.

    Lines are cut to the terminal's width: a wrapped line would take two rows
    and the next cursor-up would miss it.
    """
    up = f"\x1b[{previous}F" if previous else ""
    body = "\n".join(line[: max(1, width - 1)] for line in lines)
    return f"{up}\x1b[J{body}\n"


def read_running(name: str) -> list[dict[str, Any]]:
    """The running trials, each with ``latest_value``: its last reported objective."""
    page = _request(
        "GET",
        f"/studies/{segment(name)}/trials",
        params={"state": "RUNNING", "limit": MAX_RUNNING_SHOWN + 1},
    )
    running: list[dict[str, Any]] = page["items"]
    for trial in running[:MAX_RUNNING_SHOWN]:
        detail = _request("GET", f"/studies/{segment(name)}/trials/{trial['number']}")
        curve = detail["intermediate_values"]
        last = max(curve, key=int) if curve else None
        trial["latest_value"] = None if last is None else curve[last]
    return running


def _progress_of(trial: dict[str, Any]) -> tuple[Any, ...]:
    return trial["number"], trial["epochs_run"], trial.get("latest_value")


def watch_study(name: str, *, interval: float, as_json: bool) -> None:
    """Refresh until the study ends or Ctrl-C; see the module's docstring."""
    tty = sys.stdout.isatty() and not as_json
    if threading.current_thread() is threading.main_thread():
        # A shell starts background jobs with SIGINT ignored, and Python then keeps
        # it ignored; watching is interactive, so Ctrl-C must always end it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    meter = RateMeter()
    drawn = 0
    previous = ""
    try:
        while True:
            study = _request("GET", f"/studies/{segment(name)}")
            running = read_running(name) if study["state"] not in ENDED_STATES else []
            meter.add(time.monotonic(), int(study["finished"]))
            per_hour = meter.per_hour(study, datetime.datetime.now(datetime.UTC))
            if as_json:
                typer.echo(
                    json.dumps({"study": study, "running": running, "trials_per_hour": per_hour})
                )
            elif tty:
                lines = render_block(study, running, per_hour)
                sys.stdout.write(redraw(drawn, lines, shutil.get_terminal_size().columns))
                sys.stdout.flush()
                drawn = len(lines)
            else:
                # Only progress counts as a change: the rate and the seconds move every refresh.
                key = repr((progress_line(study), [_progress_of(t) for t in running]))
                if key != previous:
                    typer.echo(render_line(study, running, per_hour))
                previous = key
            if study["state"] in ENDED_STATES:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
