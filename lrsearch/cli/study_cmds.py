"""``list``, ``trials``, ``pause``/``resume``/``cancel``, ``enqueue`` and ``wait``.

REST clients of the service, like ``status`` and ``best``: they find it at
``LRSEARCH_API_URL`` with the key in ``LRSEARCH_API_KEY`` and every call goes
through :func:`lrsearch.cli.client_cmds._request`, so errors print and exit
alike. Read commands take ``--json``: then stdout holds one JSON document and
nothing else, for scripts.

Exit codes: 0 success, 1 a failed request, 2 bad input.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, NoReturn

import typer

from lrsearch.cli.client_cmds import EXIT_BAD_INPUT, EXIT_FAILED, _request, open_http
from lrsearch.client._http import segment

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")
]
TRIAL_STATES = ("RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL")
# The service's largest page: fewest round trips when the CLI filters pages itself.
_MAX_PAGE = 500


def register(app: typer.Typer) -> None:
    """Add the study commands to ``app``."""
    app.command("list")(list_studies)
    app.command("trials")(trials)
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("cancel")(cancel)
    app.command("enqueue")(enqueue)
    app.command("wait")(wait)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _value(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def studies_table(items: list[dict[str, Any]]) -> str:
    """The study list as text: state, finished/budget, running, failed trials, best value.

    A ``failed`` study gets its reason on the line below it.
    """
    if not items:
        return "no studies yet (create one with: lrsearch submit FILE.yaml)"
    width = max(4, *(len(s["name"]) for s in items))
    header = (
        f"{'name':<{width}}  {'state':<9} {'progress':>11} {'running':>7} {'failed':>6} "
        f"{'best':>9}  task"
    )
    lines = [header, "-" * len(header)]
    for s in items:
        counts = s["counts"]
        progress = f"{s['finished']}/{s['n_trials']}"
        lines.append(
            f"{s['name']:<{width}}  {s['state']:<9} {progress:>11} {counts.get('RUNNING', 0):>7} "
            f"{counts.get('FAIL', 0):>6} {_value(s['best_value']):>9}  {s['task']}"
        )
        if s.get("state_reason"):
            lines.append(f"{'':<{width}}  reason: {s['state_reason']}")
    return "\n".join(lines)


def list_studies(
    limit: Annotated[int, typer.Option(help="Show at most this many studies.", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List your tenant's studies, newest first: state, progress n/N, best value."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(items) < limit:
        params: dict[str, Any] = {"limit": min(_MAX_PAGE, limit - len(items))}
        if cursor:
            params["cursor"] = cursor
        page = _request("GET", "/studies", params=params)
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    if as_json:
        _echo_json(items)
    else:
        typer.echo(studies_table(items))


def trials_table(items: list[dict[str, Any]]) -> str:
    """Trials as text: number, state, value, schedule, lr, batch, epochs, seconds, error."""
    if not items:
        return "no trials match"
    header = (
        f"{'trial':>5}  {'state':<8} {'value':>9}  {'schedule':<12} {'lr':>9} {'batch':>5} "
        f"{'epochs':>6} {'seconds':>8}  error"
    )
    lines = [header, "-" * len(header)]
    for t in items:
        lr = "-" if t["learning_rate"] is None else f"{t['learning_rate']:.2e}"
        seconds = "-" if t["duration_s"] is None else f"{t['duration_s']:.1f}"
        error = (t.get("error") or "").splitlines()[0][:60] if t.get("error") else ""
        lines.append(
            f"{t['number']:>5}  {t['state']:<8} {_value(t['value']):>9}  "
            f"{t['schedule'] or '-':<12} {lr:>9} {t['batch_size'] or '-':>5} "
            f"{t['epochs_run']:>6} {seconds:>8}  {error}"
        )
    return "\n".join(lines)


def trials(
    name: Annotated[str, typer.Argument(help="The study's name.")],
    state: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Only trials in this state (repeatable): {', '.join(TRIAL_STATES)}.",
        ),
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(help="Only trials of this schedule type, e.g. cosine.")
    ] = None,
    order: Annotated[
        str, typer.Option(help="number (oldest first) or value (best first).")
    ] = "number",
    limit: Annotated[int, typer.Option(help="Show at most this many trials.", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List a study's trials, filtered by state and schedule type."""
    states = [s.upper() for s in state or []]
    problems = [
        f"--state {s}: not one of {', '.join(TRIAL_STATES)}"
        for s in states
        if s not in TRIAL_STATES
    ]
    if order not in ("number", "value"):
        problems.append(f"--order {order}: not one of number, value")
    if problems:
        for p in problems:
            typer.echo(f"error: {p}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    items = _matching_trials(name, states, schedule, order, limit)
    if as_json:
        _echo_json(items)
    else:
        typer.echo(trials_table(items))


def _matching_trials(
    name: str, states: list[str], schedule: str | None, order: str, limit: int
) -> list[dict[str, Any]]:
    """Pages of trials until ``limit`` match.

    The schedule filter is applied here: ``schedule`` is sent as well, so a
    service that filters by it saves the pages, and one that does not (it
    ignores unknown query names) still gives the right answer.
    """
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(items) < limit:
        params: list[tuple[str, Any]] = [("state", s) for s in states]
        page_size = limit - len(items) if schedule is None else _MAX_PAGE
        params += [("order", order), ("limit", min(_MAX_PAGE, page_size))]
        if schedule is not None:
            params.append(("schedule", schedule))
        if cursor:
            params.append(("cursor", cursor))
        page = _request("GET", f"/studies/{segment(name)}/trials", params=params)
        items.extend(t for t in page["items"] if schedule is None or t["schedule"] == schedule)
        cursor = page["next_cursor"]
        if not cursor:
            break
    return items[:limit]


def _control(action: str, name: str) -> None:
    study = _request("POST", f"/studies/{segment(name)}/{action}")
    typer.echo(f"study {study['name']} is now {study['state']}")


def pause(name: Annotated[str, typer.Argument(help="The study's name.")]) -> None:
    """Stop handing out new trials; running trials finish. Undo with resume."""
    _control("pause", name)


def resume(name: Annotated[str, typer.Argument(help="The study's name.")]) -> None:
    """Hand out trials of a paused study again."""
    _control("resume", name)


def cancel(name: Annotated[str, typer.Argument(help="The study's name.")]) -> None:
    """Stop a study for good; running trials finish."""
    _control("cancel", name)


def parse_params(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Parameters from one JSON object or ``key=value`` words; and every problem found.

    A value is read as JSON when it parses (``0.1``, ``64``, ``true``), else as
    text (``schedule=cosine``).
    """
    if len(args) == 1 and args[0].lstrip().startswith("{"):
        try:
            data = json.loads(args[0])
        except json.JSONDecodeError as exc:
            return {}, [f"PARAMS is not valid JSON: {exc}"]
        if not isinstance(data, dict):
            return {}, ["PARAMS must be a JSON object"]
        return data, []
    params: dict[str, Any] = {}
    problems: list[str] = []
    for arg in args:
        key, sep, text = arg.partition("=")
        if not sep or not key:
            problems.append(f"{arg!r}: expected key=value or one JSON object")
            continue
        if key in params:
            problems.append(f"{key}: given twice")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text
    return params, problems


def enqueue(
    name: Annotated[str, typer.Argument(help="The study's name.")],
    params: Annotated[
        list[str],
        typer.Argument(
            help="Parameters as one JSON object or key=value words, e.g. schedule=cosine "
            "learning_rate=0.05 cosine.t_max=10. Those left out are sampled.",
            show_default=False,
        ),
    ],
) -> None:
    """Queue a trial with some or all parameters fixed; it runs before sampled ones."""
    values, problems = parse_params(params)
    if problems:
        typer.echo(f"error: {len(problems)} problem(s):", err=True)
        for p in problems:
            typer.echo(f"  {p}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    answer = _request(
        "POST", f"/studies/{segment(name)}/trials", {"params": values, "partial": True}
    )
    fixed = ", ".join(f"{k}={v}" for k, v in sorted(answer["params"].items()))
    typer.echo(f"enqueued in {answer['study']}: {fixed or 'nothing fixed'}; the rest sampled")


def wait(
    timeout: Annotated[
        float, typer.Option(help="Give up after this many seconds (exit 1).", min=0)
    ] = 30.0,
    interval: Annotated[float, typer.Option(help="Seconds between tries.", min=0.05)] = 0.5,
) -> None:
    """Wait until the service at LRSEARCH_API_URL answers its health check."""
    from lrsearch.client import ClientError

    client, _ = open_http()
    deadline = time.monotonic() + timeout
    last = ""
    try:
        while True:
            try:
                client.json("GET", "/healthz", retry=False, timeout=max(interval, 1.0))
            except ClientError as exc:
                last = str(exc)
            else:
                typer.echo(f"service at {client.url} is ready", err=True)
                return
            if time.monotonic() >= deadline:
                _fail(
                    f"no healthy service at {client.url} after {timeout:g} s: {last}", EXIT_FAILED
                )
            time.sleep(interval)
    finally:
        client.close()
