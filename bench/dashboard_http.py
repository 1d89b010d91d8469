"""Time every request the dashboard makes, over HTTP, on a big study.

Builds (or with ``--reuse`` reuses) a study of N finished trials with
``bench/results_queries.py``'s bulk builder (100,000 by default), serves the
app plus the dashboard in a child process (uvicorn, as ``lrsearch serve``
does) and times each GET endpoint of a study with ``httpx`` over one
keep-alive connection: the first request after the service started
(``cold``: empty caches in the service, whatever PostgreSQL has cached), then
``--reps`` more (``warm``), reported as p50 and p95.

The endpoints are read from the service's own OpenAPI document: every GET
under ``/studies/{name}`` (a ``{number}`` is filled with the study's best
trial), so endpoints added later are measured too. One that needs query
parameters it does not get answers 422 and is listed as skipped.

``--paths both`` (the default) serves the same database twice at once: one
service reads the study summaries from every trial (the ``*_scan`` functions
of ``storage``, what the service did before the running totals of
``storage/_aggregates.py``), the other is the service as shipped; each
request goes to both in turn, so the two columns share the machine's load.

Usage::

    .venv/bin/python bench/dashboard_http.py [--url URL] [--trials 100000] [--reps 30]
        [--reuse] [--paths both|scan|totals] [--json FILE] [--only REGEX] [--before DIR]

``--before DIR`` serves a third column from another checkout's code (an
older version, whose schema revision must not be behind the database's: copy
newer revisions into it), each request again going to every service in turn.

Besides the dashboard's own requests, the all-trials list is timed with each
sort and order and with state or schedule filters (``TRIAL_LIST_QUERIES``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_render import _free_port, _stop, _study, app_factory
from dashboard_render import _serve as serve_app
from results_queries import DEFAULT_URL

from lrsearch import storage

PATHS_ENV = "LRSEARCH_BENCH_SUMMARY_PATHS"

# The dashboard's own query strings (service/static/app.js); other endpoints get none.
DASHBOARD_QUERIES = {
    "/studies": "?limit=50",
    "/studies/{name}/curves": "?per_schedule=3&pruned=10",
    "/studies/{name}/scatter": "?limit=2000",
    "/studies/{name}/trials": "?limit=50",
}
# Not pages the dashboard reads, or not reads at all.
SKIP = {"/studies/{name}/trials/claim"}
# The all-trials table's other sorts and filters (the first page of each).
TRIAL_LIST_QUERIES = [
    f"?sort={sort}&order={order}&limit=50"
    for sort in ("number", "value", "state", "schedule")
    for order in ("asc", "desc")
    if (sort, order) != ("number", "asc")
] + [
    "?sort=value&order=desc&state=FAIL&state=PRUNED&limit=50",
    "?sort=number&state=FAIL&limit=50",
    "?sort=value&order=desc&schedule=cosine&limit=50",
]


def scan_app_factory() -> Any:
    """The service with every summary read from all of a study's trials (the old path)."""
    from lrsearch.storage import _confirm, _study_pages, _summary_scan

    storage.study_summary = _summary_scan.study_summary_scan  # type: ignore[assignment]
    storage.best_trial = _summary_scan.best_trial_scan  # type: ignore[assignment]
    storage.best_per_schedule = _summary_scan.best_per_schedule_scan  # type: ignore[assignment]
    storage.study_progress = _study_pages.study_progress_scan  # type: ignore[assignment]
    _confirm.best_per_schedule = _summary_scan.best_per_schedule_scan  # type: ignore[assignment]
    return app_factory()


def _serve(url: str, port: int, factory: str, evaluator: str | None) -> subprocess.Popen[bytes]:
    return serve_app(url, port, evaluator, factory=f"dashboard_http:{factory}")


def _serve_checkout(url: str, port: int, checkout: Path) -> subprocess.Popen[bytes]:
    """The service as the code of another checkout (``--before DIR``) serves it, once it answers."""
    env = {
        **os.environ,
        "LRSEARCH_STORAGE": url,
        "PYTHONPATH": f"{checkout / 'bench'}{os.pathsep}{checkout}",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "dashboard_http:app_factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, env=env, cwd=checkout)
    deadline = time.monotonic() + 60
    while server.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz").status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit(f"the service of {checkout} did not start")


def _paths(client: httpx.Client, name: str, task: str, number: int) -> list[tuple[str, str]]:
    """``(template, concrete path)`` of every GET endpoint the study pages can make."""
    spec = client.get("/openapi.json").json()
    out = [("/whoami", "/api/v1/whoami"), ("/studies", "/api/v1/studies?limit=50")]
    out.append(("/schedules/best", f"/api/v1/schedules/best?task={task}&top=3"))
    for full, ops in sorted(spec["paths"].items()):
        template = full.removeprefix("/api/v1")
        if "get" not in ops or not template.startswith("/studies/{name}") or template in SKIP:
            continue
        concrete = template.replace("{name}", name).replace("{number}", str(number))
        if "{" in concrete:
            continue
        out.append((template, f"/api/v1{concrete}{DASHBOARD_QUERIES.get(template, '')}"))
        if template == "/studies/{name}/trials":
            out += [(template + q, f"/api/v1{concrete}{q}") for q in TRIAL_LIST_QUERIES]
    return out


def _time(client: httpx.Client, path: str) -> tuple[float, int]:
    t = time.perf_counter()
    response = client.get(path)
    return time.perf_counter() - t, response.status_code


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    bases: dict[str, str],
    key: str,
    record: storage.StudyRecord,
    reps: int,
    only: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Cold and warm timings (seconds) of every endpoint on each service, by path template.

    With several services, each request goes to them in turn, so that they
    share whatever else the machine is doing. ``only``: a regular expression
    that the endpoints' templates must match.
    """
    headers = {"Authorization": f"Bearer {key}"}
    clients = {
        run: httpx.Client(base_url=base, headers=headers, timeout=600)
        for run, base in bases.items()
    }
    try:
        first = next(iter(clients.values()))
        best = first.get(f"/api/v1/studies/{record.name}/best").json()["trial"]
        number = best["number"] if best else 0
        paths = _paths(first, record.name, record.definition.task, number)
        if only is not None:
            paths = [(t, p) for t, p in paths if re.search(only, t)]
        results: dict[str, dict[str, Any]] = {run: {} for run in clients}
        for template, path in paths:
            cold = {run: _time(client, path) for run, client in clients.items()}
            warm: dict[str, list[float]] = {run: [] for run in clients}
            if all(status != 422 for _, status in cold.values()):
                for _ in range(reps):
                    for run, client in clients.items():
                        warm[run].append(_time(client, path)[0])
            for run in clients:
                seconds, status = cold[run]
                entry: dict[str, Any] = {"path": path, "status": status}
                if warm[run]:
                    entry.update(
                        cold=seconds, p50=statistics.median(warm[run]), p95=_pct(warm[run], 0.95)
                    )
                else:
                    entry["skipped"] = True
                results[run][template] = entry
        return results
    finally:
        for client in clients.values():
            client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="SQLAlchemy URL (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=100_000, help="finished trials")
    parser.add_argument("--reps", type=int, default=30, help="warm requests per endpoint")
    parser.add_argument("--reuse", action="store_true", help="reuse the study if it exists")
    parser.add_argument(
        "--paths",
        choices=["both", "scan", "totals"],
        default="both",
        help="summaries from full scans, from the running totals, or both (default)",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--only", help="time only the endpoints whose template matches this regex")
    parser.add_argument(
        "--before",
        type=Path,
        help="also serve the code of this other checkout (an older version), as column 'before'",
    )
    parser.add_argument(
        "--importance-evaluator",
        choices=["fanova", "ped_anova", "mean_decrease_impurity"],
        help="the service's LRSEARCH_IMPORTANCE_EVALUATOR (default: the service's default)",
    )
    args = parser.parse_args(argv)

    name = f"bench-dashboard-{args.trials}"
    factories = {"scan": "scan_app_factory", "totals": "app_factory"}
    runs = ["scan", "totals"] if args.paths == "both" else [args.paths]
    backend = storage.open_backend(args.url, pool_size=2)
    load_before = os.getloadavg()[0]
    try:
        record = _study(backend, name, args.trials, args.reuse)
        api_key, key = storage.create_key(backend, scope="read", tenant=record.tenant)
        servers = []
        try:
            bases = {}
            for run in runs:
                port = _free_port()
                servers.append(_serve(args.url, port, factories[run], args.importance_evaluator))
                bases[run] = f"http://127.0.0.1:{port}"
            if args.before is not None:
                port = _free_port()
                servers.append(_serve_checkout(args.url, port, args.before.resolve()))
                bases["before"] = f"http://127.0.0.1:{port}"
            results = measure(bases, key, record, args.reps, args.only)
        finally:
            for server in servers:
                _stop(server)
            storage.revoke_key(backend, api_key.key_id)
    finally:
        backend.dispose()
    header = (
        f"{args.trials} trials on {args.url.split('://')[0]}; {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load_before:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after; {args.reps} warm requests per endpoint"
    )
    print(header)
    _table(results)
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "results": results}, indent=1))
    return 0


def _table(results: dict[str, dict[str, Any]]) -> None:
    runs = list(results)
    cells = "".join(f" | {r} cold | {r} p50 | {r} p95" for r in runs)
    print(f"| endpoint{cells} |")
    print("|---" + "|---:" * 3 * len(runs) + "|")
    for template in results[runs[0]]:
        row = f"| `{template}`"
        for run in runs:
            r = results[run].get(template, {})
            if r.get("skipped") or "p50" not in r:
                row += f" | {r.get('status', '-')} | | "
                continue
            row += f" | {r['cold'] * 1000:.0f} | {r['p50'] * 1000:.0f} | {r['p95'] * 1000:.0f}"
        print(row + " |")


if __name__ == "__main__":
    raise SystemExit(main())
