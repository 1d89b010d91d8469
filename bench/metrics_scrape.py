"""Time of a ``/metrics`` scrape with a 20k-trial study: counting every scrape vs. the cache.

Adds one study with ``--trials`` trials (bulk-inserted into Optuna's ``trials``
table on PostgreSQL, a third each COMPLETE, PRUNED, FAIL) and a read key, then
scrapes ``/metrics`` through the real app (``TestClient``) ``--reps`` times with
``metrics_refresh_s=0`` (a ``GROUP BY`` over every trial on each scrape, as
before the cache) and with the default refresh period. ``/whoami`` is timed
too: the cost of a request with key verification and nothing else.

    .venv/bin/python bench/metrics_scrape.py --url postgresql+psycopg://root@127.0.0.1:5432/DB
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
import warnings
from collections.abc import Callable

import sqlalchemy as sa

from lrsearch import storage
from lrsearch.search_space import parse_definition
from lrsearch.service import Settings, create_app


def _seed(url: str, n: int) -> str:
    backend = storage.open_backend(url)
    try:
        tenant = f"bench-{uuid.uuid4().hex[:6]}"
        definition = parse_definition(
            {"name": f"metrics-{uuid.uuid4().hex[:8]}", "task": "synthetic",
             "budget": {"n_trials": 100_000}}
        )  # fmt: skip
        record = storage.create_study(backend, definition, tenant=tenant)
        with backend.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO trials (number, study_id, state, datetime_start) "
                    "SELECT g, :sid, (CASE g % 3 WHEN 0 THEN 'COMPLETE' WHEN 1 THEN 'PRUNED' "
                    "ELSE 'FAIL' END)::trialstate, now() FROM generate_series(0, :n - 1) AS g"
                ),
                {"sid": record.study_id, "n": n},
            )
            total = conn.execute(sa.text("SELECT count(*) FROM trials")).scalar_one()
        print(f"trials in the storage: {total}")
        _, key = storage.create_key(backend, scope="read", tenant=tenant)
        return key
    finally:
        backend.dispose()


def _median_ms(call: Callable[[], object], reps: int) -> tuple[float, float]:
    call()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, max(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get(
        "LRSEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
    )
    parser.add_argument("--url", default=default, help="a PostgreSQL URL")
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    key = _seed(args.url, args.trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient deprecation notice
        from starlette.testclient import TestClient
    headers = {"Authorization": f"Bearer {key}"}
    for refresh_s in (0.0, Settings().metrics_refresh_s):
        app = create_app(Settings(storage=args.url, metrics_refresh_s=refresh_s))
        with TestClient(app) as client:

            def scrape(c: TestClient = client) -> None:
                assert c.get("/metrics", headers=headers).status_code == 200

            def whoami(c: TestClient = client) -> None:
                assert c.get("/api/v1/whoami", headers=headers).status_code == 200

            m_med, m_max = _median_ms(scrape, args.reps)
            w_med, _ = _median_ms(whoami, args.reps)
        print(
            f"metrics_refresh_s={refresh_s:g}: /metrics median {m_med:.2f} ms, max {m_max:.2f} ms"
            f" over {args.reps} scrapes; /whoami median {w_med:.2f} ms"
        )


if __name__ == "__main__":
    main()
