"""Time the dashboard's study page on a big study, measured in the browser.

Builds (or with ``--reuse`` reuses) a study of N finished trials on the
PostgreSQL test server with ``bench/results_queries.py``'s bulk builder
(20,000 by default), serves the app plus the dashboard in a child process
(uvicorn, as ``lrsearch serve`` does), opens the study page in headless
Chromium and reads what the page measured (``performance.now()``, from the
navigation start): ``window.__lrsearchContent`` when the header, the
leaderboard and the tables beside it are drawn (plotly.js is loaded only
after that), ``window.__lrsearchRendered`` when all of that and every chart,
importance included, are drawn, and ``window.__lrsearchTimings`` for the parts.

Three kinds of visit are reported: the first after the service started (it
also computes parameter importance, which the service then caches until more
trials finish), ``--runs`` first-time visits (a new incognito context each:
plotly.js, 4.8 MB, is fetched, compiled and run every time) and ``--runs``
returning visits (one on-disk profile that has seen the page before, so
plotly.js comes from the HTTP cache and V8's code cache, as for anyone who
has opened the dashboard before). Medians, with min and max.

``--compare DIR`` also serves the dashboard's files from DIR (another version
of ``service/static/``, e.g. ``git show REV:service/static/app.js`` and so on)
on a second service over the same database, and visits both alternately, so
that both sets of figures share the machine's load. ``--plotly FILE`` adds a
service with the current files that serves FILE as ``plotly.min.js`` (another
build of plotly.js, e.g. a partial bundle, to see what it would save).

Usage::

    .venv/bin/python bench/dashboard_render.py [--url URL] [--trials 20000] [--runs 7]
        [--reuse] [--importance-evaluator fanova|ped_anova|mean_decrease_impurity]
        [--compare DIR] [--plotly FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_queries import DEFAULT_URL, _drop_study, build_study

from lrsearch import storage

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 1000}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


STATIC_ENV = "LRSEARCH_BENCH_STATIC"  # the dashboard's files from this folder instead
PLOTLY_ENV = "LRSEARCH_BENCH_PLOTLY"  # this file as plotly.min.js instead of the package's


def app_factory() -> Any:
    """The service with the dashboard routers (until ``create_app`` includes them itself)."""
    from lrsearch.service import API_PREFIX, Settings, create_app
    from lrsearch.service.routes import curves, dashboard

    if os.environ.get(STATIC_ENV):
        dashboard.STATIC_DIR = Path(os.environ[STATIC_ENV])
    if os.environ.get(PLOTLY_ENV):
        plotly_js = Path(os.environ[PLOTLY_ENV])
        dashboard._plotly_js = lambda: plotly_js

    app = create_app(Settings())
    paths = {getattr(route, "path", None) for route in app.routes}
    for router, probe in ((curves.router, f"{API_PREFIX}/whoami"), (dashboard.router, "/")):
        if probe not in paths:
            app.include_router(router)
    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(
    url: str,
    port: int,
    evaluator: str | None,
    factory: str = "dashboard_render:app_factory",
    static: Path | None = None,
    plotly_js: Path | None = None,
) -> subprocess.Popen[bytes]:
    """The app ``factory`` (``module:callable`` in bench/) under uvicorn, once it answers;
    with ``static``, the dashboard's files from that folder, with ``plotly_js``, that file
    as plotly.js (``app_factory`` only)."""
    here = Path(__file__).resolve().parent
    # This checkout's code (not another one installed in the venv), and this module.
    env = {**os.environ, "LRSEARCH_STORAGE": url, "PYTHONPATH": f"{here}{os.pathsep}{here.parent}"}
    if evaluator is not None:
        env["LRSEARCH_IMPORTANCE_EVALUATOR"] = evaluator
    env.pop(STATIC_ENV, None)
    env.pop(PLOTLY_ENV, None)
    if static is not None:
        env[STATIC_ENV] = str(static.resolve())
    if plotly_js is not None:
        env[PLOTLY_ENV] = str(plotly_js.resolve())
    command = [sys.executable, "-m", "uvicorn", "--factory", factory]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz").status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit("the service did not start")
        time.sleep(0.2)


def _study(backend: storage.Backend, name: str, trials: int, reuse: bool) -> storage.StudyRecord:
    if reuse:
        try:
            record = storage.get_study(backend, name)
            with backend.engine.connect() as conn:
                if sum(storage.study_summary(conn, record).counts.values()) == trials:
                    print(f"reusing {name!r}", file=sys.stderr)
                    return record
        except storage.StudyNotFoundError:
            pass
    t = time.perf_counter()
    _drop_study(backend, name)
    record = build_study(backend, name, trials)
    print(f"built {name!r}: {trials} trials in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return record


@dataclass(frozen=True)
class Visit:
    """Milliseconds from the navigation start, as the page measured them."""

    content: float | None  # header, leaderboard and tables drawn; None: a page without the mark
    rendered: float | None  # all charts drawn; None: importance did not come in time
    without_importance: float  # leaderboard and the three other charts drawn
    data: float  # the study, schedules, curves and scatter answers all in
    plotly: float  # plotly.js loaded and run
    requests: int  # API requests made
    kib: float  # API response bodies


def _visit(
    context: Any, base: str, name: str, importance_timeout_s: float, screenshot: str | None = None
) -> Visit:
    """Open the study page in a new tab of ``context`` and read its timings."""
    page = context.new_page()
    api_calls: list[Any] = []
    page.on("requestfinished", lambda r: api_calls.append(r) if "/api/v1/" in r.url else None)
    try:
        page.goto(f"{base}/#/study/{name}", timeout=120_000)  # a loaded machine is slow
        page.wait_for_function(
            "() => (window.__lrsearchTimings || {}).withoutImportance", timeout=120_000
        )
        rendered = None
        try:
            page.wait_for_selector("body[data-rendered=study]", timeout=importance_timeout_s * 1000)
            rendered = float(page.evaluate("() => window.__lrsearchRendered"))
        except PlaywrightTimeoutError:
            pass
        t = page.evaluate("() => window.__lrsearchTimings")
        content = page.evaluate("() => window.__lrsearchContent ?? null")
        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=screenshot, full_page=True)
        return Visit(
            content=None if content is None else float(content),
            rendered=rendered,
            without_importance=float(t["withoutImportance"]),
            data=float(t["data"]),
            plotly=float(t["plotly"]),
            requests=len(api_calls),
            kib=sum(r.sizes()["responseBodySize"] for r in api_calls) / 1024,
        )
    finally:
        page.close()


def _with_key(context: Any, key: str) -> Any:
    # The key as the dashboard keeps it, so each visit goes straight to the study.
    context.add_init_script(f"localStorage.setItem('lrsearch.apiKey', {key!r})")
    return context


@dataclass
class Visits:
    """What one service's pages measured: its first visit, first-time and returning visits."""

    first: Visit | None = None
    cold: list[Visit] = field(default_factory=list)
    returning: list[Visit] = field(default_factory=list)


def _visits(p: Any, bases: dict[str, str], key: str, name: str, args: argparse.Namespace) -> Any:
    """For each service in ``bases`` (label -> URL), taken in turn at every step: the first
    visit after it started, then ``runs`` first-time visits (a new incognito context each:
    empty cache) and ``runs`` returning visits (one browser profile on disk, each page
    visited twice before: plotly.js comes from the HTTP cache and V8's code cache, as in
    the browser of someone who has opened the dashboard before)."""
    timeout = args.importance_timeout
    out = {label: Visits() for label in bases}
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        for run in range(args.runs + 1):
            for label, base in bases.items():
                context = _with_key(browser.new_context(viewport=VIEWPORT), key)
                visit = _visit(context, base, name, timeout)
                context.close()
                if run == 0:
                    out[label].first = visit
                else:
                    out[label].cold.append(visit)
    finally:
        browser.close()
    with tempfile.TemporaryDirectory(prefix="lrsearch-profile-") as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        try:
            _with_key(context, key)
            for _ in range(2):  # V8 caches a script's code from its third load on
                for base in bases.values():
                    _visit(context, base, name, timeout)
            for _ in range(args.runs):
                for label, base in bases.items():
                    out[label].returning.append(_visit(context, base, name, timeout))
            if args.screenshot:
                _visit(context, bases["current"], name, timeout, screenshot=args.screenshot)
        finally:
            context.close()
    return out


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a request still computing: do not wait
        server.kill()
        server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="SQLAlchemy URL (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=20_000, help="finished trials")
    parser.add_argument("--runs", type=int, default=7, help="visits after the first one")
    parser.add_argument("--reuse", action="store_true", help="reuse the study if it exists")
    parser.add_argument(
        "--importance-evaluator",
        choices=["fanova", "ped_anova", "mean_decrease_impurity"],
        help="the service's LRSEARCH_IMPORTANCE_EVALUATOR (default: the service's default)",
    )
    parser.add_argument(
        "--importance-timeout",
        type=float,
        default=120.0,
        help="seconds a visit waits for the importance chart (default: %(default)s)",
    )
    parser.add_argument("--screenshot", help="save a screenshot of the page to this PNG file")
    parser.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also measure the dashboard files in DIR (another version of service/static/); "
        "may be repeated",
    )
    parser.add_argument(
        "--plotly",
        type=Path,
        metavar="FILE",
        help="also measure the current files with FILE served as plotly.min.js",
    )
    args = parser.parse_args(argv)
    for folder in args.compare:
        if not (folder / "index.html").is_file():
            parser.error(f"--compare: no index.html in {folder}")
    if args.plotly is not None and not args.plotly.is_file():
        parser.error(f"--plotly: no file {args.plotly}")

    name = f"bench-dashboard-{args.trials}"
    # label -> (the dashboard's files, plotly.js): None for the checkout's and the package's
    services: dict[str, tuple[Path | None, Path | None]] = {"current": (None, None)}
    if args.plotly is not None:
        services[f"current, plotly.js {args.plotly.name}"] = (None, args.plotly)
    for folder in args.compare:
        services[f"compared ({folder})"] = (folder, None)
    backend = storage.open_backend(args.url, pool_size=2)
    try:
        record = _study(backend, name, args.trials, args.reuse)
        api_key, key = storage.create_key(backend, scope="read", tenant=record.tenant)
        servers: list[subprocess.Popen[bytes]] = []
        bases: dict[str, str] = {}
        try:
            for label, (static, plotly_js) in services.items():
                port = _free_port()
                evaluator = args.importance_evaluator
                servers.append(
                    _serve(args.url, port, evaluator, static=static, plotly_js=plotly_js)
                )
                bases[label] = f"http://127.0.0.1:{port}"
            load_before = os.getloadavg()[0]
            with sync_playwright() as p:
                measured = _visits(p, bases, key, name, args)
        finally:
            for server in servers:
                _stop(server)
            storage.revoke_key(backend, api_key.key_id)
    finally:
        backend.dispose()
    print(
        f"{args.trials} trials on {args.url.split('://')[0]}; {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load_before:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after; headless Chromium; importance evaluator: "
        f"{args.importance_evaluator or 'service default'}"
    )
    timeout = args.importance_timeout
    for label, v in measured.items():
        print(f"== {label} dashboard files")
        print(f"first visit after the service started: {_describe([v.first], timeout)}")
        print(f"first-time visits (empty cache), {args.runs}: {_describe(v.cold, timeout)}")
        print(
            f"returning visits (cached plotly.js), {args.runs}: {_describe(v.returning, timeout)}"
        )
        if v.first is not None:
            first = v.first
            print(f"per visit: {first.requests} API requests, {first.kib:.0f} KiB of API responses")
    return 0


def _describe(visits: list[Visit | None], timeout_s: float) -> str:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} ms"

    def spread(values: list[float]) -> str:
        if len(values) < 2:
            return median(values)
        return f"{median(values)} ({min(values):.0f}-{max(values):.0f})"

    seen = [v for v in visits if v is not None]
    contents = [v.content for v in seen if v.content is not None]
    text = "text and tables drawn: " + (spread(contents) if contents else "not marked")
    done = [v.rendered for v in seen if v.rendered is not None]
    text += "; all charts drawn: " + (spread(done) if done else "never")
    if len(done) < len(seen):
        text += f", {len(seen) - len(done)} of {len(seen)} without importance at {timeout_s:.0f} s"
    return (
        f"{text}; without importance {median([v.without_importance for v in seen])}, "
        f"API data in {median([v.data for v in seen])}, "
        f"plotly.js ready {median([v.plotly for v in seen])}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
