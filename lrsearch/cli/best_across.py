"""Plain-text views of schedule settings: ``lrsearch best NAME`` and ``lrsearch best --task``."""

from __future__ import annotations

from typing import Any


def _schedule_text(settings: dict[str, Any] | None) -> str:
    if not settings:
        return "-"
    warmup = settings.get("warmup")
    return settings["call"] if not warmup else f"{warmup} then {settings['call']}"


def with_pytorch_column(table: str, schedules: list[dict[str, Any]]) -> str:
    """``table`` (header, rule, one row per schedule) with each winner's PyTorch scheduler.

    The column goes last, so that each row still starts with its schedule type.
    """
    if not any(s.get("settings") for s in schedules):
        return table
    lines = table.splitlines()
    # Header, rule, one row per schedule, then any footnote lines (confirmation).
    head, rows, notes = lines[:3], lines[3 : 3 + len(schedules)], lines[3 + len(schedules) :]
    if len(rows) != len(schedules):
        return table  # not the layout this column is made for: leave it as it is
    head[1] += "  PyTorch (learning rates absolute)"
    head[2] = "-" * len(head[1])
    rows = [
        f"{row}  {_schedule_text(s.get('settings'))}" if s.get("best") else row
        for row, s in zip(rows, schedules, strict=True)
    ]
    return "\n".join(head + rows + notes)


def cross_study_table(body: dict[str, Any]) -> str:
    """``GET /schedules/best`` as text: per direction, each schedule's best trials."""
    if not body["items"]:
        return f"No completed trial in any of your studies of task {body['task']!r}."
    lines = [f"Best schedules across your studies of task {body['task']!r}"]
    header = (
        f"  {'schedule':<12} {'value':>8} {'study':<28} {'trial':>5} {'lr':>9} "
        f"{'batch':>5} {'epochs':>6}  PyTorch"
    )
    direction = None
    for item in body["items"]:
        if item["direction"] != direction:
            direction = item["direction"]
            lines += ["", f"{direction} (studies that {direction} their metric)", header]
            lines.append("  " + "-" * (len(header) - 2))
        for i, t in enumerate(item["trials"]):
            label = item["schedule"] if i == 0 else ""
            value = "-" if t["value"] is None else f"{t['value']:.4f}"
            lr = "-" if t["learning_rate"] is None else f"{t['learning_rate']:.2e}"
            lines.append(
                f"  {label:<12} {value:>8} {t['study'][:28]:<28} {t['number']:>5} {lr:>9} "
                f"{t['batch_size'] or '-':>5} {t['epochs_trained']:>6}  "
                f"{_schedule_text(t['settings'])}"
            )
    return "\n".join(lines)
