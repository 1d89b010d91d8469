"""``submit``, ``status``, ``best``, ``delete`` and ``keys create``.

``submit``, ``status``, ``best`` and ``delete`` are the REST service's client
(``serve`` is in :mod:`lrsearch.cli.serve_cmds`): they find it at
``LRSEARCH_API_URL`` with the key in ``LRSEARCH_API_KEY``
(:class:`~lrsearch.client._settings.ClientSettings`). ``keys create`` writes
straight to ``LRSEARCH_STORAGE``. Heavy imports (the service, httpx, storage)
happen inside the commands, so that ``lrsearch worker`` never loads FastAPI.

Exit codes: 0 success, 1 a failed request (unreachable service, 401, 404,
409, ...), 2 bad input (an unreadable file, a definition with problems).
"""

from __future__ import annotations

import enum
import http
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from lrsearch.cli._definition_file import DefinitionFileError, load_definition
from lrsearch.client._http import segment
from lrsearch.client._settings import ClientSettings

if TYPE_CHECKING:
    from lrsearch.client import ClientError
    from lrsearch.client._http import Http

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
BAR_WIDTH = 30


class KeyScope(enum.StrEnum):
    READ = "read"
    SUBMIT = "submit"
    ADMIN = "admin"


def register(app: typer.Typer) -> None:
    """Add the service and REST-client commands to ``app``."""
    app.command("submit")(submit)
    app.command("status")(status)
    app.command("best")(best)
    app.command("delete")(delete)
    keys = typer.Typer(help="API keys of the service.", no_args_is_help=True)
    keys.command("create")(keys_create)
    app.add_typer(keys, name="keys")


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _client_settings() -> ClientSettings:
    from pydantic import ValidationError

    try:
        return ClientSettings()
    except ValidationError as exc:  # pragma: no cover - two plain strings cannot fail today
        _fail(f"bad LRSEARCH_API_URL / LRSEARCH_API_KEY: {exc}", EXIT_BAD_INPUT)


def open_http() -> tuple[Http, bool]:
    """The client's :class:`~lrsearch.client._http.Http` on ``LRSEARCH_API_URL`` / ``_KEY``.

    Returns:
        The connection, and whether a key is set (a 401 without one gets a hint).
    """
    from lrsearch.client._http import Http

    settings = _client_settings()
    # "" rather than None: Http would read the environment again for None.
    return Http(settings.api_url, settings.api_key or ""), settings.api_key is not None


def _request(method: str, path: str, body: Any = None, *, params: Any = None) -> Any:
    """Call the service; on an error response print the problem and exit.

    ``path`` is relative to ``/api/v1``; quote each variable part with :func:`segment`.
    ``params`` is the query string (a mapping or a list of pairs, for repeated names).
    One try, no retry: a command answers at once, and ``submit`` is not safe to repeat.
    """
    from lrsearch.client import ClientError

    client, has_key = open_http()
    try:
        # default=str: YAML dates and the like go over as text (the service judges them).
        content = None if body is None else json.dumps(body, default=str)
        return client.json(
            method,
            path,
            retry=False,
            content=content,
            params=params,
            headers={"Content-Type": "application/json"} if content else None,
        )
    except ClientError as exc:
        report_client_error(exc, base=client.url, has_key=has_key)
    finally:
        client.close()


def report_client_error(exc: ClientError, *, base: str, has_key: bool) -> NoReturn:
    """Print a failed request as the CLI does and exit: 2 for a 422 listing problems, else 1.

    Args:
        exc: What the client (:class:`~lrsearch.client._http.Http`) raised.
        base: The service's URL, named when it cannot be reached.
        has_key: Whether a key was sent (a 401 without one hints at ``LRSEARCH_API_KEY``).
    """
    from lrsearch.client import ApiError, ServiceUnreachableError

    if isinstance(exc, ServiceUnreachableError):
        _fail(f"cannot reach the service at {base} (LRSEARCH_API_URL): {exc}")
    if not isinstance(exc, ApiError):
        _fail(str(exc))  # the client's own verdict, e.g. no completed trial yet
    detail = exc.problem.get("detail") or http.HTTPStatus(exc.status).phrase
    if exc.status == 422 and exc.errors:
        typer.echo(f"error: {len(exc.errors)} problem(s):", err=True)
        for error in exc.errors:
            where = ".".join(str(part) for part in error.get("loc", [])) or "<body>"
            typer.echo(f"  {where}: {error.get('msg', '')}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if exc.status == 401 and not has_key:
        detail += " (set LRSEARCH_API_KEY)"
    _fail(f"{exc.status} {detail}")


def _load_definition(path: Path) -> Any:
    try:
        return load_definition(path)
    except DefinitionFileError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)


def submit(
    file: Annotated[Path, typer.Argument(help="Study definition, YAML or JSON.")],
) -> None:
    """Create a study from a definition file; prints every problem if it is invalid."""
    data = _load_definition(file)
    if not isinstance(data, dict):
        _fail(f"{file}: a study definition must be a mapping of fields", EXIT_BAD_INPUT)
    study = _request("POST", "/studies", data)
    d = study["definition"]
    typer.echo(
        f"created study {study['name']}: task {study['task']}, {study['n_trials']} trials x "
        f"up to {study['max_epochs']} epochs, {d['sampler']['type']} sampler, "
        f"{d['pruner']['type']} pruner, {len(d['search_space']['schedules'])} schedule types"
    )
    typer.echo(f"follow it with: lrsearch status {study['name']} --watch")


def progress_line(study: dict[str, Any]) -> str:
    """One line of progress: a bar of finished/budget trials, counts, state and best value."""
    budget = max(1, int(study["n_trials"]))
    finished = min(int(study["finished"]), budget)
    filled = round(BAR_WIDTH * finished / budget)
    counts = study["counts"]
    parts = [f"running {counts['RUNNING']}", f"pruned {counts['PRUNED']}"]
    parts.append(f"failed {counts['FAIL']}")
    if counts.get("WAITING"):
        parts.append(f"waiting {counts['WAITING']}")
    line = (
        f"{study['name']} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] "
        f"{finished}/{budget} finished ({', '.join(parts)}) {study['state']}"
    )
    best_trial = study.get("best")
    if best_trial and best_trial.get("value") is not None:
        line += (
            f", best {best_trial['value']:.4f} (#{best_trial['number']} {best_trial['schedule']})"
        )
    return line


def status(
    name: Annotated[str, typer.Argument(help="The study's name.")],
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Redraw until the study ends (Ctrl-C stops watching): running trials with "
            "their epoch and value, trials per hour, ETA.",
        ),
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.", min=0.1)] = 2.0,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the study as JSON on stdout (with --watch: one line a refresh)."
        ),
    ] = False,
) -> None:
    """Show a study's progress: finished/budget trials, running, pruned and failed."""
    if watch:
        from lrsearch.cli.watch import watch_study

        watch_study(name, interval=interval, as_json=as_json)
        return
    study = _request("GET", f"/studies/{segment(name)}")
    typer.echo(json.dumps(study, indent=2, sort_keys=True) if as_json else progress_line(study))
    if not as_json and study.get("infeasible"):
        typer.echo(infeasible_line(study["infeasible"]))


def infeasible_line(infeasible: list[dict[str, Any]]) -> str:
    """``out of memory: batch 256 on NVIDIA A10 (22.0 GiB) x3; ...`` for ``status``."""
    parts = []
    for b in infeasible:
        memory = "" if b["memory_gb"] is None else f" ({b['memory_gb']} GiB)"
        parts.append(f"batch {b['batch_size']} on {b['device']}{memory} x{b['trials']}")
    return "out of memory: " + "; ".join(parts)


def schedules_table(study: dict[str, Any], schedules: list[dict[str, Any]]) -> str:
    """The best trial per schedule type as a plain-text table."""
    header = (
        f"{'schedule':<12} {'best':>8} {'lr':>9} {'batch':>5} {'dropout':>7} {'init':<16} "
        f"{'warm-up':>7} {'epochs':>6} {'trial':>5}  completed/pruned"
    )
    confirmed = any(s.get("confirmed") for s in schedules)
    if confirmed:
        header += "  confirmed mean±std (n)"
    objective = f"{study['metric']}, {study['direction']}"
    lines = [f"Best trial per schedule type in {study['name']} ({objective})", header]
    lines.append("-" * len(header))
    for s in schedules:
        counts = f"{s['n_complete']}/{s['n_pruned']}"
        b = s["best"]
        if b is None:
            lines.append(
                f"{s['schedule']:<12} {'-':>8}  (no completed trial; {s['n_pruned']} pruned, "
                f"{s['n_failed']} failed)"
            )
            continue
        lines.append(
            f"{s['schedule']:<12} {b['value']:>8.4f} {b['learning_rate']:>9.2e} "
            f"{b['batch_size']:>5} {b['dropout']:>7.3f} {b['weight_init']:<16} "
            f"{b['warmup_epochs'] or 0:>7} {b['epochs_run']:>6} {b['number']:>5}  {counts}"
            + _confirmed_cell(s.get("confirmed"))
        )
    if confirmed:
        lines.append(
            "confirmed: the winner re-trained with other seeds; ranked by that mean. "
            "~NAME: within noise of NAME (|m1-m2| < 2*sqrt(s1^2/n1 + s2^2/n2))."
        )
    return "\n".join(lines)


def _confirmed_cell(c: dict[str, Any] | None) -> str:
    if not c:
        return ""
    std = "-" if c["std"] is None else f"{c['std']:.4f}"
    noise = "".join(f" ~{other}" for other in c["within_noise"])
    return f"  {c['mean']:.4f}±{std} ({c['n']}){noise}"


class BestAs(enum.StrEnum):
    TABLE = "table"
    PYTORCH = "pytorch"


def best(
    name: Annotated[
        str | None, typer.Argument(help="The study's name (or --task instead).")
    ] = None,
    as_: Annotated[
        BestAs,
        typer.Option("--as", help="table, or pytorch: the winner as optimizer + scheduler code."),
    ] = BestAs.TABLE,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the table's data as JSON on stdout (not with --as)."),
    ] = False,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="Instead of a study: the best schedules across all your "
            "studies of this task (GET /schedules/best).",
        ),
    ] = None,
) -> None:
    """Print the best trial of each schedule type, best schedule first."""
    if (name is None) == (task is None):
        _fail("give a study NAME or --task TASK (one of them)", EXIT_BAD_INPUT)
    if task is not None:
        if as_ == BestAs.PYTORCH:
            _fail("--as pytorch takes a study NAME, not --task", EXIT_BAD_INPUT)
        from lrsearch.cli.best_across import cross_study_table

        body = _request("GET", "/schedules/best", params={"task": task})
        typer.echo(json.dumps(body, indent=2) if as_json else cross_study_table(body))
        return
    assert name is not None  # one of the two, checked above
    if as_json and as_ == BestAs.PYTORCH:
        _fail("--json prints the table's data: leave out --as pytorch", EXIT_BAD_INPUT)
    if as_ == BestAs.PYTORCH:
        from lrsearch.cli.export_cmds import best_as_pytorch

        best_as_pytorch(name)
        return
    study = _request("GET", f"/studies/{segment(name)}")
    schedules = _request("GET", f"/studies/{segment(name)}/schedules")["items"]
    if as_json:
        typer.echo(json.dumps({"study": study["name"], "schedules": schedules}, indent=2))
        return
    from lrsearch.cli.best_across import with_pytorch_column

    typer.echo(with_pytorch_column(schedules_table(study, schedules), schedules))


def delete(
    name: Annotated[str, typer.Argument(help="The study's name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a study and all its trials (asks first unless --yes)."""
    # No answer (an empty or closed stdin) is a no: click aborts with exit code 1.
    if not yes and not typer.confirm(f"Delete study {name!r} and all its trials?", err=True):
        _fail(f"study {name} not deleted")
    _request("DELETE", f"/studies/{segment(name)}")
    typer.echo(f"deleted study {name}", err=True)


def keys_create(
    scope: Annotated[KeyScope, typer.Option(help="read < submit < admin.")],
    tenant: Annotated[str, typer.Option(help="Tenant whose studies the key sees.")] = "default",
) -> None:
    """Create an API key in LRSEARCH_STORAGE; prints the key alone on stdout, once."""
    from lrsearch import storage

    backend = storage.open_backend()
    try:
        key, plain = storage.create_key(backend, scope=scope.value, tenant=tenant)
    except ValueError as exc:  # create_key's documented answer to a bad tenant name
        _fail(str(exc), EXIT_BAD_INPUT)
    finally:
        backend.dispose()
    typer.echo(
        f"created {key.scope} key {key.key_id} for tenant {key.tenant!r} in "
        f"{masked_url(backend.url)}; it is shown only this once",
        err=True,
    )
    typer.echo(plain)


def masked_url(url: str) -> str:
    """A storage URL fit for logs: the password, if any, shown as ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL SQLAlchemy can parse: show nothing of it
        return "<storage>"
