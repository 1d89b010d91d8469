"""Time the dashboard's pages on a big study, measured in the browser.

Builds (or with ``--reuse`` reuses) a study of N finished trials on the
PostgreSQL test server with ``bench/results_queries.py``'s bulk builder
(20,000 by default), serves the app plus the dashboard in a child process
(uvicorn, as ``lrsearch serve`` does), opens each page of ``--views`` in
headless Chromium (study, trials, analysis, trial: the study's best one,
list: the studies list) and reads the two marks the page sets
(``performance.now()``, from the navigation start): ``window.__lrsearchContent``
when its text and tables are drawn, ``window.__lrsearchRendered`` when
everything, every chart included (on the study page also importance), is; and
on the study page ``window.__lrsearchTimings`` for the parts.

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
``--without-304`` adds a service with the current files that never answers
``304 Not Modified`` for them (each visit downloads them again, as before they
had ETags).

Usage::

    .venv/bin/python bench/dashboard_render.py [--url URL] [--trials 20000] [--runs 7]
        [--reuse] [--importance-evaluator fanova|ped_anova|mean_decrease_impurity]
        [--compare DIR] [--plotly FILE] [--without-304]
        [--views study,trials,analysis,trial,list]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_render_report import report
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
NO_304_ENV = "LRSEARCH_BENCH_NO_304"  # never 304 for the dashboard's own files
WITHOUT_304 = "current, never 304"


def app_factory() -> Any:
    """The service with the dashboard routers (until ``create_app`` includes them itself)."""
    from lrsearch.service import API_PREFIX, Settings, create_app
    from lrsearch.service.routes import curves, dashboard

    if os.environ.get(STATIC_ENV):
        dashboard.STATIC_DIR = Path(os.environ[STATIC_ENV])
    if os.environ.get(PLOTLY_ENV):
        plotly_js = Path(os.environ[PLOTLY_ENV])
        dashboard._plotly_js = lambda: plotly_js
    if os.environ.get(NO_304_ENV):
        dashboard._etag_matches = lambda if_none_match, etag: False

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
    *,
    without_304: bool = False,
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
    env.pop(NO_304_ENV, None)
    if without_304:
        env[NO_304_ENV] = "1"
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


# --views name -> (the mark the page sets, its route after #)
VIEWS = {
    "study": ("study", "/study/{name}"),
    "trials": ("trials", "/study/{name}/trials"),
    "analysis": ("analysis", "/study/{name}/analysis"),
    "trial": ("trial", "/study/{name}/trial/{trial}"),
    "list": ("studies", "/"),
}


@dataclass(frozen=True)
class Visit:
    """Milliseconds from the navigation start, as the page measured them."""

    content: float  # text and tables drawn (data-content)
    rendered: float | None  # everything, charts included (data-rendered); None: not in time
    requests: int  # API requests made
    kib: float  # API response bodies
    static_kib: float  # the page and its files as sent (a 304 sends headers only)
    # The study page's steps (window.__lrsearchTimings); None on the other views.
    without_importance: float | None = None  # leaderboard and the three other charts drawn
    data: float | None = None  # the study, schedules, curves and scatter answers all in
    plotly: float | None = None  # plotly.js loaded and run


def _mark(page: Any, view: str, which: str, timeout_s: float) -> float:
    # Read the moment the mark appears: a page that polls may set it again later.
    handle = page.wait_for_function(
        f"([v]) => document.body.dataset.{which} === v && window.__lrsearch{which.title()}",
        arg=[view],
        timeout=timeout_s * 1000,
    )
    return float(handle.json_value())


def _visit(
    context: Any, base: str, route: str, view: str, timeout_s: float, screenshot: str = ""
) -> Visit:
    """Open ``route`` (after #) in a new tab of ``context`` and read what the page measured."""
    page = context.new_page()
    finished: list[Any] = []
    page.on("requestfinished", lambda request: finished.append(request))
    try:
        page.goto(f"{base}/#{route}", timeout=120_000)  # a loaded machine is slow
        content = _mark(page, view, "content", 120)
        timings: dict[str, float] = {}
        if view == "study":
            page.wait_for_function(
                "() => (window.__lrsearchTimings || {}).withoutImportance", timeout=120_000
            )
        rendered = None
        with contextlib.suppress(PlaywrightTimeoutError):
            rendered = _mark(page, view, "rendered", timeout_s if view == "study" else 120)
        if view == "study":
            timings = page.evaluate("() => window.__lrsearchTimings")
        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=screenshot, full_page=True)
        api = [r for r in finished if "/api/v1/" in r.url]
        files = [r for r in finished if r.url.startswith(base) and "/api/v1/" not in r.url]
        sizes = [r.sizes() for r in files]
        return Visit(
            content=content,
            rendered=rendered,
            requests=len(api),
            kib=sum(r.sizes()["responseBodySize"] for r in api) / 1024,
            static_kib=sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes) / 1024,
            without_importance=timings.get("withoutImportance"),
            data=timings.get("data"),
            plotly=timings.get("plotly"),
        )
    finally:
        page.close()


def _with_key(context: Any, key: str) -> Any:
    # The key as the dashboard keeps it, so each visit goes straight to the page.
    context.add_init_script(f"localStorage.setItem('lrsearch.apiKey', {key!r})")
    return context


@dataclass
class Visits:
    """What one service's view measured: its first visit, first-time and returning visits."""

    first: Visit | None = None
    cold: list[Visit] = field(default_factory=list)
    returning: list[Visit] = field(default_factory=list)


def _visits(
    p: Any, bases: dict[str, str], key: str, routes: dict[str, str], args: argparse.Namespace
) -> dict[tuple[str, str], Visits]:
    """For each service in ``bases`` (label -> URL) and each view in ``routes`` (view ->
    route), taken in turn at every step: the first visit after the service started (in
    the order of ``routes``), then ``runs`` first-time visits (a new incognito context
    each: empty cache) and ``runs`` returning visits (one browser profile on disk, each
    page visited twice before: our files are revalidated, plotly.js comes from the HTTP
    cache and V8's code cache, as in the browser of someone who has opened the dashboard
    before). Keyed by (service label, view)."""
    timeout = args.importance_timeout
    out = {(label, view): Visits() for label in bases for view in routes}
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        for run in range(args.runs + 1):
            for view, route in routes.items():
                for label, base in bases.items():
                    context = _with_key(browser.new_context(viewport=VIEWPORT), key)
                    visit = _visit(context, base, route, VIEWS[view][0], timeout)
                    context.close()
                    if run == 0:
                        out[label, view].first = visit
                    else:
                        out[label, view].cold.append(visit)
    finally:
        browser.close()
    with tempfile.TemporaryDirectory(prefix="lrsearch-profile-") as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        try:
            _with_key(context, key)
            for _ in range(2):  # V8 caches a script's code from its third load on
                for view, route in routes.items():
                    for base in bases.values():
                        _visit(context, base, route, VIEWS[view][0], timeout)
            for _ in range(args.runs):
                for view, route in routes.items():
                    for label, base in bases.items():
                        visit = _visit(context, base, route, VIEWS[view][0], timeout)
                        out[label, view].returning.append(visit)
            if args.screenshot:
                view, route = next(iter(routes.items()))
                base = bases["current"]
                _visit(context, base, route, VIEWS[view][0], timeout, args.screenshot)
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
    parser.add_argument(
        "--views",
        default=",".join(VIEWS),
        help="the pages to visit, comma-separated, in this order (default: %(default)s)",
    )
    parser.add_argument(
        "--without-304",
        action="store_true",
        help="also measure a service that never answers 304 Not Modified for the dashboard's "
        "own files (as before they had ETags): each visit downloads them again",
    )
    args = parser.parse_args(argv)
    views = [v.strip() for v in args.views.split(",") if v.strip()]
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        parser.error(f"--views: unknown {unknown or 'none given'}; choose from {', '.join(VIEWS)}")
    for folder in args.compare:
        if not (folder / "index.html").is_file():
            parser.error(f"--compare: no index.html in {folder}")
    if args.plotly is not None and not args.plotly.is_file():
        parser.error(f"--plotly: no file {args.plotly}")

    name = f"bench-dashboard-{args.trials}"
    # label -> (the dashboard's files, plotly.js): None for the checkout's and the package's
    services: dict[str, tuple[Path | None, Path | None]] = {"current": (None, None)}
    if args.without_304:
        services[WITHOUT_304] = (None, None)
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
                no_304 = label == WITHOUT_304
                servers.append(
                    _serve(
                        args.url,
                        port,
                        evaluator,
                        static=static,
                        plotly_js=plotly_js,
                        without_304=no_304,
                    )
                )
                bases[label] = f"http://127.0.0.1:{port}"
            study = httpx.get(
                f"{bases['current']}/api/v1/studies/{quote(name)}",
                headers={"Authorization": f"Bearer {key}"},
            ).json()
            trial = int((study.get("best") or {}).get("number", 0))  # the trial page's subject
            routes = {v: VIEWS[v][1].format(name=quote(name), trial=trial) for v in views}
            load_before = os.getloadavg()[0]
            with sync_playwright() as p:
                measured = _visits(p, bases, key, routes, args)
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
        f"{args.importance_evaluator or 'service default'}; the study is {study['state']}, "
        f"trials {study['counts']}"
    )
    report(measured, list(bases), views, routes, args.runs, args.importance_timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
