"""Per-report cost: the REST trial protocol (client over HTTP) vs a built-in worker (storage).

For each storage, one study with ``max_epochs = N`` and no pruner:

- ``http``: a real ``lrsearch serve`` subprocess; one client trial reports N
  epochs through :class:`lrsearch.Client` (``trial.report``: one POST each,
  which is also the heartbeat, and the server's report + should_prune).
- ``storage``: what a built-in worker does per epoch, in-process:
  ``trial.report`` + ``trial.should_prune`` on Optuna's RDB storage.

Usage: python bench/protocol_overhead.py [--reports 200] [--postgres URL]
Prints milliseconds per report (median of the N, and the mean).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from lrsearch import Client, storage
from lrsearch.search_space import parse_definition


def _definition(name: str, n: int) -> dict[str, object]:
    return {
        "name": name,
        "task": "external",
        "objective": {"metric": "score", "direction": "maximize"},
        "budget": {"n_trials": 1, "max_epochs": n},
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "search_space": {"warmup_epochs": 0},
    }


def _serve(url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "LRSEARCH_STORAGE": url}
    lrsearch = str(Path(sys.executable).parent / "lrsearch")
    out = log.open("wb")
    proc = subprocess.Popen(
        [lrsearch, "serve", "--port", str(port)], env=env, stdout=out, stderr=out
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(log.read_text())


def http_ms(url: str, n: int, log: Path) -> list[float]:
    backend = storage.open_backend(url)
    _, key = storage.create_key(backend, scope="submit")
    backend.dispose()
    proc, base = _serve(url, log)
    try:
        with Client(base, key) as client:
            study = client.create_study(_definition(f"bench-{uuid.uuid4().hex[:8]}", n))
            times: list[float] = []
            for trial in study.trials():
                for epoch in trial.epochs():
                    start = time.perf_counter()
                    trial.report(0.5 + epoch * 1e-4, epoch)
                    times.append((time.perf_counter() - start) * 1000)
        return times
    finally:
        proc.terminate()
        proc.wait()


def storage_ms(url: str, n: int) -> list[float]:
    backend = storage.open_backend(url)
    try:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        record = storage.create_study(backend, parse_definition(_definition(name, n)))
        study = storage.load_optuna_study(backend, record)
        trial = storage.claim_trial(backend, study, worker="bench:1", device="cpu")
        assert trial is not None
        times = []
        for epoch in range(n):
            start = time.perf_counter()
            trial.report(0.5 + epoch * 1e-4, epoch)
            trial.should_prune()
            times.append((time.perf_counter() - start) * 1000)
        return times
    finally:
        backend.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--postgres", default=None, help="also measure on this PostgreSQL URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        for label, url in urls.items():
            for kind, times in (
                ("storage", storage_ms(url, args.reports)),
                ("http", http_ms(url, args.reports, Path(tmp) / f"{label}.log")),
            ):
                median, mean = statistics.median(times), statistics.fmean(times)
                print(
                    f"{label:10s} {kind:8s} {len(times)} reports: "
                    f"median {median:.2f} ms, mean {mean:.2f} ms"
                )


if __name__ == "__main__":
    main()
