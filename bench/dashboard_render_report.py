"""What ``bench/dashboard_render.py`` prints: per service and view, its three kinds of
visit, then one table of medians (milliseconds from the navigation start)."""

from __future__ import annotations

import statistics
from typing import Any


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms"


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return _median(values)
    return f"{_median(values)} ({min(values):.0f}-{max(values):.0f})"


def describe(visits: list[Any], timeout_s: float) -> str:
    """One line on ``visits`` (``Visit``): both marks, median (min-max), and the study
    page's steps."""
    seen = [v for v in visits if v is not None]
    if not seen:
        return "no visit"
    text = "text and tables drawn: " + _spread([v.content for v in seen])
    done = [v.rendered for v in seen if v.rendered is not None]
    text += "; everything drawn: " + (_spread(done) if done else "never")
    if len(done) < len(seen):
        text += f", {len(seen) - len(done)} of {len(seen)} not in time ({timeout_s:.0f} s)"
    study = [v for v in seen if v.without_importance is not None]
    if study:
        text += (
            f"; without importance {_median([v.without_importance for v in study])}, "
            f"API data in {_median([v.data for v in study])}, "
            f"plotly.js ready {_median([v.plotly for v in study])}"
        )
    sent = statistics.median([v.static_kib for v in seen])
    text += f"; page and static files over the wire {sent:.0f} KiB"
    return text


def _cell(visits: list[Any]) -> str:
    contents = [v.content for v in visits]
    done = [v.rendered for v in visits if v.rendered is not None]
    if not contents:
        return "-"
    last = f"{statistics.median(done):.0f}" if done else "never"
    return f"{statistics.median(contents):.0f} / {last}"


def report(
    measured: dict[tuple[str, str], Any],
    labels: list[str],
    views: list[str],
    routes: dict[str, str],
    runs: int,
    timeout_s: float,
) -> None:
    """Print what ``measured`` ((service label, view) -> ``Visits``) holds."""
    for label in labels:
        for view in views:
            v = measured[label, view]
            print(f"== {label} dashboard files, {view} (#{routes[view]})")
            print(f"first visit after the service started: {describe([v.first], timeout_s)}")
            print(f"first-time visits (empty cache), {runs}: {describe(v.cold, timeout_s)}")
            print(f"returning visits (warm cache), {runs}: {describe(v.returning, timeout_s)}")
            if v.first is not None:
                f = v.first
                print(f"per visit: {f.requests} API requests, {f.kib:.0f} KiB of API responses")
    print("\nmedians, ms: text and tables drawn / everything drawn")
    print("| view | service | first visit | first-time visits | returning visits |")
    print("|---|---|---:|---:|---:|")
    for view in views:
        for label in labels:
            v = measured[label, view]
            first = _cell([v.first] if v.first is not None else [])
            print(f"| {view} | {label} | {first} | {_cell(v.cold)} | {_cell(v.returning)} |")
