"""Out-of-memory batch sizes (and a warm start) on the study page, in headless Chromium.

The studies live in a storage of their own (so the shared ``site``'s list of
studies stays as its tests expect). Trials end the way the worker ends an
out-of-memory trial: PRUNED with an ``oom`` error and the ``infeasible`` user
attr. No GPU here: the CUDA-shaped record (card name and memory) is written
literally as ``infeasible_record`` writes it on CUDA; the CPU one comes from
``infeasible_record`` itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition, sample_config
from lrsearch.service import Settings
from lrsearch.workers._loop_support import infeasible_record
from tests.dashboard_tests.conftest import (
    DashboardSite,
    dashboard_app,
    enter_key,
    screenshot,
    serving,
    wait_rendered,
)
from tests.storage_tests.test_warm_start import _definition, _step

pytestmark = pytest.mark.browser

STUDIES = {"oom": "oom-study", "plain": "plain-study", "warm": "warm-study"}
# As infeasible_record writes it on a CUDA device (no GPU on this machine).
TIMES = "\N{MULTIPLICATION SIGN}"
H100 = {"batch_size": 128, "device": "NVIDIA H100 80GB HBM3", "memory_gb": 79.1}


def _play(
    backend: storage.Backend, name: str, runs: list[tuple[int, dict[str, Any] | None]]
) -> None:
    """One trial per run with that batch size: COMPLETE, or ended as the worker ends an OOM."""
    record = storage.get_study(backend, name)
    study = storage.load_optuna_study(backend, record)
    for batch, oom in runs:
        storage.enqueue_fixed(backend, study, record, _step(0.01 * batch / 32, batch=batch))
        trial = storage.claim_trial(backend, study, worker="w:1", device="cpu")
        assert trial is not None
        sample_config(trial, record.definition)
        if oom is None:
            storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=0.5)
        else:
            attrs = {"infeasible": oom, "error": "oom: CUDA out of memory"}
            storage.finish_trial(backend, study, trial, state=TrialState.PRUNED, user_attrs=attrs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardSite]:
    url = f"sqlite:///{tmp_path_factory.mktemp('infeasible') / 'infeasible.db'}"
    backend = storage.open_backend(url)
    cpu = infeasible_record(64, torch.device("cpu"), "cpu")
    for role in ("oom", "plain"):
        storage.create_study(backend, parse_definition(_definition(STUDIES[role])))
    _play(backend, STUDIES["oom"], [(128, H100), (32, None), (128, H100), (64, cpu)])
    _play(backend, STUDIES["plain"], [(32, None), (64, None)])
    warm = _definition(STUDIES["warm"], warm_start={"from": [STUDIES["plain"]], "top_k": 1})
    storage.create_study(backend, parse_definition(warm))
    keys = {"read": storage.create_key(backend, scope="read")[1]}
    try:
        with serving(dashboard_app(Settings(storage=url))) as served:
            yield DashboardSite(
                url=served, storage_url=url, backend=backend, studies=STUDIES, keys=keys
            )
    finally:
        backend.dispose()


def _open(page: Any, site: DashboardSite, role: str) -> None:
    enter_key(page, site, site.keys["read"], f"/study/{site.studies[role]}")
    wait_rendered(page, "study")


def _entry_text(b: dict[str, Any]) -> str:
    memory = "" if b["memory_gb"] is None else f" ({b['memory_gb']} GiB)"
    trials = f"{b['trials']} trial" + ("" if b["trials"] == 1 else "s")
    return f"batch {b['batch_size']} on {b['device']}{memory} {TIMES} {trials}"


def test_oom_study_shows_exactly_the_apis_infeasible_batches(
    page: Any, site: DashboardSite
) -> None:
    entries = site.api(f"/studies/{site.studies['oom']}")["infeasible"]
    # What the trials wrote, grouped: the H100 batch twice, the CPU one once.
    assert {(e["batch_size"], e["device"], e["memory_gb"], e["trials"]) for e in entries} == {
        (H100["batch_size"], H100["device"], H100["memory_gb"], 2),
        (64, "cpu", None, 1),
    }
    _open(page, site, "oom")
    screenshot(page, "study-infeasible")
    assert page.is_visible("#study-infeasible")
    shown = page.locator("#study-infeasible [data-field=infeasible]").all_inner_texts()
    assert shown == [_entry_text(e) for e in entries]
    assert page.inner_text("#study-infeasible").startswith("Out of GPU memory: ")
    assert page.is_hidden("#study-warm-start")


def test_study_without_oom_shows_nothing_about_it(page: Any, site: DashboardSite) -> None:
    # The OOM study first: its line must not linger on the next study's page.
    _open(page, site, "oom")
    name = site.studies["plain"]
    assert site.api(f"/studies/{name}")["infeasible"] == []
    page.goto(site.page_url(f"/study/{name}"))
    wait_rendered(page, "study")
    assert page.is_hidden("#study-infeasible")
    assert page.locator("#study-infeasible [data-field=infeasible]").count() == 0


def test_warm_started_study_says_where_from(page: Any, site: DashboardSite) -> None:
    report = site.api(f"/studies/{site.studies['warm']}")["warm_start"]
    _open(page, site, "warm")
    assert page.is_visible("#study-warm-start")
    assert page.inner_text("#study-warm-start") == (
        f"Warm-started from: {site.studies['plain']} · {len(report['enqueued'])} enqueued, "
        f"{len(report['skipped'])} skipped"
    )
