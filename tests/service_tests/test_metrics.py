"""``/metrics``: needs a key, shows only totals, and does not count every trial on each scrape."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lrsearch import storage
from lrsearch.search_space import parse_definition
from lrsearch.service import Settings, create_app
from lrsearch.service.metrics import CountsCache, StorageCounts
from tests.service_tests.conftest import Api, TestClient, unique_name
from tests.service_tests.helpers import DriveTrials, drive_trials


def _samples(text: str, name: str) -> dict[str, float]:
    """``{label value or "": value}`` of one metric family."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf'{name}(?:\{{\w+="([^"]*)"\}})? (\S+)', line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


@pytest.mark.parametrize("authorization", [None, "Bearer lrs_nothing"])
def test_metrics_need_a_valid_key(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/metrics", "/api/v1/metrics"):
        response = api.client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"


def test_a_read_key_of_any_tenant_scrapes_totals_without_tenant_labels(
    api: Api, other_api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study()["name"]
    drive(name, outcomes=["COMPLETE"])
    text = other_api.client.get("/metrics", headers=other_api.headers("read")).text
    assert _samples(text, "lrsearch_trials")["COMPLETE"] >= 1
    assert _samples(text, "lrsearch_studies")["running"] >= 1
    for secret in (api.tenant, other_api.tenant, name):
        assert secret not in text
    assert "tenant=" not in text


@pytest.fixture
def statements(tmp_path: Path) -> Iterator[tuple[Callable[..., Any], list[str]]]:
    """An app factory on a seeded SQLite file, and the SQL its engine runs."""
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    backend = storage.open_backend(url)
    tenant = unique_name("tenant")
    _, key = storage.create_key(backend, scope="read", tenant=tenant)
    definition = parse_definition(
        {"name": unique_name(), "task": "synthetic", "budget": {"n_trials": 4, "max_epochs": 2}}
    )
    record = storage.create_study(backend, definition, tenant=tenant)
    drive_trials(backend, record, outcomes=["COMPLETE", "PRUNED", "FAIL"])
    backend.dispose()
    seen: list[str] = []

    def start(refresh_s: float) -> tuple[TestClient, dict[str, str]]:
        app = create_app(Settings(storage=url, metrics_refresh_s=refresh_s))
        return TestClient(app), {"Authorization": f"Bearer {key}"}

    def record_sql(*args: Any) -> None:
        seen.append(str(args[2]))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record_sql)
    try:
        yield start, seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record_sql)


def _trial_scans(sql: list[str]) -> int:
    return sum(1 for s in sql if "FROM trials GROUP BY" in " ".join(s.split()))


@pytest.mark.parametrize(("refresh_s", "expected_scans"), [(3600.0, 1), (0.0, 5)])
def test_scrapes_count_trials_at_most_once_per_refresh_period(
    statements: tuple[Callable[..., Any], list[str]], refresh_s: float, expected_scans: int
) -> None:
    start, seen = statements
    client, headers = start(refresh_s)
    with client:
        seen.clear()
        texts = [client.get("/metrics", headers=headers).text for _ in range(5)]
    assert _trial_scans(seen) == expected_scans
    for text in texts:
        assert _samples(text, "lrsearch_trials")["COMPLETE"] == 1
        assert _samples(text, "lrsearch_storage_up")[""] == 1.0


def test_the_counts_cache_reads_again_once_stale_and_after_a_failure() -> None:
    now = [100.0]
    reads: list[int] = []
    failing = [False]

    def read() -> StorageCounts:
        if failing[0]:
            raise storage.StorageUnavailableError("down")
        reads.append(1)
        return StorageCounts(trials={"COMPLETE": len(reads)}, studies={})

    cache = CountsCache(read, refresh_s=10.0, clock=lambda: now[0])
    assert cache.get() == (StorageCounts({"COMPLETE": 1}, {}), 0.0)
    now[0] += 9.0
    assert cache.get() == (StorageCounts({"COMPLETE": 1}, {}), 9.0)
    now[0] += 1.0
    assert cache.get()[0] == StorageCounts({"COMPLETE": 2}, {})
    failing[0] = True
    now[0] += 10.0
    assert cache.get() == (None, 0.0)
    failing[0] = False
    # Not cached: the very next scrape reads again.
    assert cache.get()[0] == StorageCounts({"COMPLETE": 3}, {})
