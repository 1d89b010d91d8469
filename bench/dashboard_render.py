"""Time the dashboard's study page on a big study, measured in the browser.

Builds (or with ``--reuse`` reuses) a study of N finished trials on the
PostgreSQL test server with ``bench/results_queries.py``'s bulk builder
(20,000 by default), serves the app plus the dashboard in a child process
(uvicorn, as ``lrsearch serve`` does), opens the study page in headless
Chromium and reads what the page measured (``performance.now()``, from the
navigation start): ``window.__lrsearchRendered`` when the leaderboard and all
four charts are drawn, and ``window.__lrsearchTimings`` for the parts.

Three kinds of visit are reported: the first after the service started (it
also computes parameter importance, which the service then caches until more
trials finish), ``--runs`` first-time visits (a new incognito context each:
plotly.js, 4.8 MB, is fetched, compiled and run every time) and ``--runs``
returning visits (one on-disk profile that has seen the page before, so
plotly.js comes from the HTTP cache and V8's code cache, as for anyone who
has opened the dashboard before). Medians, with min and max.

Usage::

    .venv/bin/python bench/dashboard_render.py [--url URL] [--trials 20000] [--runs 7]
        [--reuse] [--importance-evaluator fanova|ped_anova|mean_decrease_impurity]
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
from dataclasses import dataclass
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


def app_factory() -> Any:
    """The service with the dashboard routers (until ``create_app`` includes them itself)."""
    from lrsearch.service import API_PREFIX, Settings, create_app
    from lrsearch.service.routes import curves, dashboard

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
) -> subprocess.Popen[bytes]:
    """The app ``factory`` (``module:callable`` in bench/) under uvicorn, once it answers."""
    here = Path(__file__).resolve().parent
    # This checkout's code (not another one installed in the venv), and this module.
    env = {**os.environ, "LRSEARCH_STORAGE": url, "PYTHONPATH": f"{here}{os.pathsep}{here.parent}"}
    if evaluator is not None:
        env["LRSEARCH_IMPORTANCE_EVALUATOR"] = evaluator
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
        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=screenshot, full_page=True)
        return Visit(
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


def _visits(p: Any, base: str, key: str, name: str, args: argparse.Namespace) -> Any:
    """The first visit after the service started, then ``runs`` first-time visits (a new
    incognito context each: empty cache) and ``runs`` returning visits (one browser
    profile on disk, visited twice before: plotly.js comes from the HTTP cache and V8's
    code cache, as in the browser of someone who has opened the dashboard before)."""
    timeout = args.importance_timeout
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        context = _with_key(browser.new_context(viewport=VIEWPORT), key)
        first = _visit(context, base, name, timeout)
        context.close()
        cold = []
        for _ in range(args.runs):
            context = _with_key(browser.new_context(viewport=VIEWPORT), key)
            cold.append(_visit(context, base, name, timeout))
            context.close()
    finally:
        browser.close()
    with tempfile.TemporaryDirectory(prefix="lrsearch-profile-") as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        try:
            _with_key(context, key)
            for _ in range(2):  # V8 caches a script's code from its third load on
                _visit(context, base, name, timeout)
            returning = [_visit(context, base, name, timeout) for _ in range(args.runs)]
            if args.screenshot:
                _visit(context, base, name, timeout, screenshot=args.screenshot)
        finally:
            context.close()
    return first, cold, returning


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
    args = parser.parse_args(argv)

    name = f"bench-dashboard-{args.trials}"
    backend = storage.open_backend(args.url, pool_size=2)
    try:
        record = _study(backend, name, args.trials, args.reuse)
        api_key, key = storage.create_key(backend, scope="read", tenant=record.tenant)
        port = _free_port()
        server = _serve(args.url, port, args.importance_evaluator)
        load_before = os.getloadavg()[0]
        try:
            with sync_playwright() as p:
                first, cold, returning = _visits(p, f"http://127.0.0.1:{port}", key, name, args)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a request still computing: do not wait
                server.kill()
                server.wait()
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
    print(f"first visit after the service started: {_describe([first], timeout)}")
    print(f"first-time visits (empty cache), {args.runs}: {_describe(cold, timeout)}")
    print(f"returning visits (cached plotly.js), {args.runs}: {_describe(returning, timeout)}")
    print(f"per visit: {first.requests} API requests, {first.kib:.0f} KiB of API responses")
    return 0


def _describe(visits: list[Visit], timeout_s: float) -> str:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} ms"

    done = [v.rendered for v in visits if v.rendered is not None]
    text = "all charts drawn: " + (median(done) if done else "never")
    if len(done) > 1:
        text += f" median (min {min(done):.0f}, max {max(done):.0f})"
    if len(done) < len(visits):
        text += (
            f", {len(visits) - len(done)} of {len(visits)} without importance at {timeout_s:.0f} s"
        )
    return (
        f"{text}; without importance {median([v.without_importance for v in visits])}, "
        f"API data in {median([v.data for v in visits])}, "
        f"plotly.js ready {median([v.plotly for v in visits])}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
