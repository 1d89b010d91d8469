"""Fixtures for the dashboard tests: real trials, a real server, a real browser.

One temporary SQLite storage per session holds three studies run by the real
worker on the ``synthetic`` task: ``done`` (finished: 12 trials x 4 epochs,
every schedule type, median pruner), ``live`` (3 of 10 trials finished; a test
finishes more while the page is open) and ``idle`` (no trial yet). The real
app (plus the dashboard routers, until ``create_app`` includes them) is served
by uvicorn in a thread; headless Chromium is Debian's, driven by Playwright.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
import torch
import uvicorn
from fastapi import FastAPI

from lrsearch import storage
from lrsearch.search_space import (
    SCHEDULE_TYPES,
    StudyDefinition,
    parse_definition,
    sample_config,
)
from lrsearch.service import Settings, create_app
from lrsearch.service.routes import curves, dashboard
from lrsearch.workers.loop import WorkerOptions, run_worker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
API = "/api/v1"
FIXTURE_SEED = 5


@dataclass(frozen=True)
class DashboardSite:
    """The running server, its storage and the keys of two tenants."""

    url: str
    storage_url: str
    backend: storage.Backend
    studies: dict[str, str]  # role (done, live, idle) -> study name
    keys: dict[str, str]  # read, submit, other_read -> key

    def api(self, path: str, key: str = "read") -> Any:
        """GET an API path with one of the keys; asserts the 200."""
        response = httpx.get(
            self.url + API + path, headers={"Authorization": f"Bearer {self.keys[key]}"}
        )
        assert response.status_code == 200, response.text
        return response.json()

    def page_url(self, route: str = "/") -> str:
        return f"{self.url}/#{route}"


def dashboard_app(settings: Settings) -> FastAPI:
    """The service's app with the dashboard routers (added unless create_app has them)."""
    app = create_app(settings)
    paths = {getattr(route, "path", None) for route in app.routes}
    for router, probe in ((curves.router, f"{API}/whoami"), (dashboard.router, "/")):
        if probe not in paths:
            app.include_router(router)
    return app


def run_trials(storage_url: str, study: str, n: int | None) -> None:
    """Run the real worker on ``study`` for ``n`` trials (``None``: until its budget is done)."""
    options = WorkerOptions(
        storage_url=storage_url,
        study=study,
        device="cpu",
        max_trials=n,
        idle_exit=2.0,
        install_signal_handlers=False,
    )
    run_worker(options)


def fixed_params(definition: StudyDefinition) -> list[dict[str, Any]]:
    """Every trial's configuration, drawn once by a seeded sampler in memory.

    The worker salts a seeded sampler with its process id (so that parallel
    workers differ), which made the fixture's trials, and so how many were
    pruned, change from run to run. Enqueuing complete configurations leaves
    the worker nothing to sample: the same trials, values and prunes every run
    (training itself is seeded and runs on one CPU thread).
    """
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=FIXTURE_SEED))
    # One trial per schedule type first, so that every type has results.
    for schedule in SCHEDULE_TYPES:
        study.enqueue_trial({"schedule": schedule})
    params = []
    for _ in range(definition.budget.n_trials):
        trial = study.ask()
        sample_config(trial, definition)
        params.append(dict(trial.params))
        study.tell(trial, 0.0)
    return params


def _create(backend: storage.Backend, name: str, n_trials: int, *, trials: bool) -> None:
    """Create a study; with ``trials``, enqueue its whole budget as fixed configurations."""
    definition = parse_definition(
        {
            "name": name,
            "task": "synthetic",
            "budget": {"n_trials": n_trials, "max_epochs": 4},
            "sampler": {"type": "random", "seed": FIXTURE_SEED},
            "pruner": {"type": "median", "min_epochs": 1},
        }
    )
    record = storage.create_study(backend, definition)
    if trials:
        study = storage.load_optuna_study(backend, record)
        for params in fixed_params(definition):
            storage.enqueue_fixed(backend, study, record, params)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 (a thread); yield its URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardSite]:
    storage_url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'dashboard.db'}"
    backend = storage.open_backend(storage_url)
    studies = {"done": "dash-done", "live": "dash-live", "idle": "dash-idle"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads cost more than they save
    try:
        _create(backend, studies["done"], 12, trials=True)
        run_trials(storage_url, studies["done"], None)
        _create(backend, studies["live"], 10, trials=True)
        run_trials(storage_url, studies["live"], 3)
        _create(backend, studies["idle"], 5, trials=False)
    finally:
        torch.set_num_threads(threads)
    keys = {
        "read": storage.create_key(backend, scope="read")[1],
        "submit": storage.create_key(backend, scope="submit")[1],
        "other_read": storage.create_key(backend, scope="read", tenant="someone-else")[1],
    }
    try:
        with serving(dashboard_app(Settings(storage=storage_url))) as url:
            yield DashboardSite(
                url=url, storage_url=storage_url, backend=backend, studies=studies, keys=keys
            )
    finally:
        backend.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (empty localStorage) that fails the test on page errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    tab.set_default_timeout(15_000)
    try:
        yield tab
        # 401/404 responses are logged by Chromium as console errors; those are expected.
        unexpected = [e for e in errors if "status of 40" not in e]
        assert not unexpected, unexpected
    finally:
        context.close()


def screenshot(tab: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


def enter_key(tab: Any, site: DashboardSite, key: str, route: str = "/") -> None:
    """Open the dashboard at ``route`` and enter a key in the key form."""
    tab.goto(site.page_url(route))
    tab.fill("#key-input", key)
    tab.click("#key-form button[type=submit]")


def wait_rendered(tab: Any, view: str) -> None:
    tab.wait_for_selector(f"body[data-rendered={view}]")
