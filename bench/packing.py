"""Trials per hour: K trials packed into one program vs one at a time vs K processes.

For each task and each K, the same K trial configurations (batch 64, SGD,
schedules, learning rates, dropout rates and inits varied; ``--epochs`` each,
no pruning) are trained three ways on one device:

- ``sequential``: ``train_trial`` for each trial in turn, in this process;
- ``processes``: K worker processes, one trial each, torch limited to one
  thread per process; the clock runs from a barrier all of them wait at
  (torch imported, data loaded, a one-epoch warm-up trial run) to the last
  one's end, so process start-up is not counted, as for long-lived workers;
- ``packed``: ``train_pack`` on all K at once, in this process.

Trials per hour is K divided by the wall time; trials per CPU-hour is K
divided by the CPU time of the process(es) doing the training, the figure to
compare on a machine shared with other jobs (wall time there depends on how
much of the cores the other jobs leave). On CPU every packed trial
reproduces its sequential run; the largest difference of final validation
accuracy between the two is printed as a check (on CUDA the packed dropout
masks come from another generator, so a small difference is expected there).

Tasks: ``digits`` (digits-mlp: 1,437 training images, MLP 64-128-64-10) and
``cnn`` (npz-classifier on generated 1x16x16 images, 10 classes, 2,048
training and 512 validation images: the two-convolution ``make_cnn``); the
image file is written to a temporary folder, nothing is downloaded.

    OMP_NUM_THREADS=1 .venv/bin/python bench/packing.py [--device cpu|cuda]
        [--ks 1,4,16,32] [--tasks digits,cnn] [--epochs 10]
        [--baselines sequential,processes] [--out results.json] [--quick]

``--quick`` (for a GPU check, under 2 minutes): K 1 and 16, 3 epochs, the
process baseline only up to K 4. ``run_packing_bench`` runs the same from
Python and returns the results as a dict.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrsearch.search_space import TrialConfig
from lrsearch.workers.packing import pack_key, train_pack
from lrsearch.workers.tasks import DigitsMLPTask, NpzClassifierTask, Task
from lrsearch.workers.training import train_trial

DATA_SEED = 0
SCHEDULES: list[dict[str, Any]] = [
    {"type": "step", "step_size": 3, "gamma": 0.5},
    {"type": "cosine", "eta_min": 0.01},
    {"type": "exponential", "gamma": 0.9},
    {"type": "cyclic", "max_lr": 4.0, "step_size": 2, "mode": "triangular"},
    {"type": "plateau", "factor": 0.5, "patience": 1},
    {"type": "warmup", "start_factor": 0.1, "ramp_epochs": 3},
]
INITS = ["default", "xavier_uniform", "kaiming_normal", "orthogonal"]


def configs(k: int, epochs: int, batch_size: int = 64) -> list[TrialConfig]:
    """K varied configurations that share one pack key (batch size, SGD)."""
    return [
        TrialConfig.model_validate(
            {
                "schedule": SCHEDULES[i % len(SCHEDULES)],
                "learning_rate": 0.01 * 1.35 ** (i % 9),
                "batch_size": batch_size,
                "dropout": (0.0, 0.1, 0.25)[i % 3],
                "weight_init": INITS[i % len(INITS)],
                "weight_decay": (0.0, 1e-4)[i % 2],
                "max_epochs": epochs,
            }
        )
        for i in range(k)
    ]


def _images(path: Path) -> None:
    """10 classes of 16x16 images: a class-specific blob pattern plus noise."""
    rng = np.random.default_rng(DATA_SEED)
    patterns = rng.normal(size=(10, 1, 16, 16)).astype(np.float32)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for split, n in (("train", 2048), ("val", 512)):
        labels = rng.integers(0, 10, size=n)
        noise = rng.normal(scale=2.0, size=(n, 1, 16, 16)).astype(np.float32)
        arrays[f"x_{split}"] = patterns[labels] + noise
        arrays[f"y_{split}"] = labels
    np.savez(path, **arrays)  # type: ignore[arg-type]


def make_task(name: str, folder: Path) -> Task:
    """The benchmark task ``digits`` or ``cnn`` (its image file written under ``folder``)."""
    if name == "digits":
        return DigitsMLPTask()
    if name == "cnn":
        path = folder / "images16.npz"
        if not path.exists():
            _images(path)
        return NpzClassifierTask({"path": str(path)})
    raise ValueError(f"unknown task {name!r}; use digits or cnn")


def _process_trial(
    task_name: str,
    folder: str,
    config: TrialConfig,
    seed: int,
    device: str,
    barrier: Any,
    starts: Any,
    ends: Any,
    cpu: Any,
    slot: int,
) -> None:
    torch.set_num_threads(1)
    task = make_task(task_name, Path(folder))
    task.load_data(DATA_SEED)
    # A long-lived worker has run trials before: pay torch's first-call costs here.
    warm = config.model_copy(update={"max_epochs": 1})
    train_trial(warm, task, seed=seed, data_seed=DATA_SEED, device=device)
    barrier.wait(timeout=3600)  # raises (the process fails) if another one died before it
    starts[slot] = time.time()
    started = time.process_time()
    train_trial(config, task, seed=seed, data_seed=DATA_SEED, device=device)
    ends[slot] = time.time()
    cpu[slot] = time.process_time() - started


def _processes(
    task_name: str, folder: Path, trials: list[TrialConfig], device: str
) -> tuple[float, float]:
    """One trial in each of K processes: (wall seconds, CPU seconds of all of them).

    The wall time runs from the common start (a barrier) to the last end.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(trials))
    starts = ctx.Array("d", len(trials))
    ends = ctx.Array("d", len(trials))
    cpu = ctx.Array("d", len(trials))
    procs = [
        ctx.Process(
            target=_process_trial,
            args=(task_name, str(folder), config, i, device, barrier, starts, ends, cpu, i),
        )
        for i, config in enumerate(trials)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a trial process exited with {proc.exitcode}")
    return max(ends[:]) - min(starts[:]), sum(cpu[:])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_packing_bench(
    device: str = "cpu",
    ks: Sequence[int] = (1, 4, 16, 32),
    *,
    tasks: Sequence[str] = ("digits", "cnn"),
    epochs: int = 10,
    baselines: Sequence[str] = ("sequential", "processes"),
    max_process_k: int | None = None,
    log: bool = True,
) -> dict[str, Any]:
    """Time every task, K and way of training; the results as a JSON-ready dict.

    Args:
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        ks: Pack sizes.
        tasks: ``digits`` and/or ``cnn``.
        epochs: Epochs per trial.
        baselines: ``sequential`` and/or ``processes``.
        max_process_k: Skip the process baseline above this K.
        log: Print each row as it is measured.
    """
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for task_name in tasks:
            task = make_task(task_name, folder)
            task.load_data(DATA_SEED)
            warm = configs(2, 1)
            assert pack_key(warm[0], task) == pack_key(warm[1], task) is not None
            train_pack(warm, task, seeds=[0, 1], data_seed=DATA_SEED, device=device)
            train_trial(warm[0], task, seed=0, data_seed=DATA_SEED, device=device)
            for k in ks:
                trials = configs(k, epochs)
                seeds = list(range(k))
                row: dict[str, Any] = {"task": task_name, "k": k, "epochs": epochs}
                _sync(device)
                started, cpu = time.perf_counter(), time.process_time()
                packed = train_pack(trials, task, seeds=seeds, data_seed=DATA_SEED, device=device)
                _sync(device)
                row["packed_s"] = time.perf_counter() - started
                row["packed_cpu_s"] = time.process_time() - cpu
                if "sequential" in baselines:
                    started, cpu = time.perf_counter(), time.process_time()
                    solo = [
                        train_trial(c, task, seed=s, data_seed=DATA_SEED, device=device)
                        for c, s in zip(trials, seeds, strict=True)
                    ]
                    _sync(device)
                    row["sequential_s"] = time.perf_counter() - started
                    row["sequential_cpu_s"] = time.process_time() - cpu
                    row["max_abs_diff_val_accuracy"] = max(
                        abs((p.value or 0.0) - (q.value or 0.0))
                        for p, q in zip(packed, solo, strict=True)
                    )
                if "processes" in baselines and (max_process_k is None or k <= max_process_k):
                    wall, cpu_s = _processes(task_name, folder, trials, device)
                    row["processes_s"], row["processes_cpu_s"] = wall, cpu_s
                for way in ("sequential", "processes", "packed"):
                    if f"{way}_s" in row:
                        row[f"{way}_trials_per_hour"] = k * 3600 / row[f"{way}_s"]
                        row[f"{way}_trials_per_cpu_hour"] = k * 3600 / row[f"{way}_cpu_s"]
                rows.append(row)
                if log:
                    print(_format_row(row), flush=True)
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(device)
        if device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "epochs": epochs,
        "rows": rows,
    }


WAYS = ("sequential", "processes", "packed")
HEADER = (
    f"{'task':<7} {'K':>3} | trials/hour (wall): {'seq':>7} {'proc':>7} {'packed':>7} "
    f"| per CPU-hour: {'seq':>7} {'proc':>7} {'packed':>7} | packed/seq (CPU) | max dAcc"
)


def _format_row(row: dict[str, Any]) -> str:
    def rates(unit: str) -> str:
        values = [row.get(f"{way}_trials_per_{unit}") for way in WAYS]
        return " ".join(f"{v:>7,.0f}" if v is not None else f"{'-':>7}" for v in values)

    seq, packed = row.get("sequential_cpu_s"), row["packed_cpu_s"]
    ratio = f"{seq / packed:>15.2f}x" if seq else f"{'-':>16}"
    diff = row.get("max_abs_diff_val_accuracy")
    return (
        f"{row['task']:<7} {row['k']:>3} | {'':>19} {rates('hour')} | {'':>13} "
        f"{rates('cpu_hour')} | {ratio} | " + (f"{diff:>8.4f}" if diff is not None else "-")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ks", default="1,4,16,32", help="comma-separated pack sizes")
    parser.add_argument("--tasks", default="digits,cnn")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--baselines", default="sequential,processes")
    parser.add_argument("--max-process-k", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="K 1 and 16, 3 epochs")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    epochs, max_process_k = args.epochs, args.max_process_k
    if args.quick:
        ks, epochs, max_process_k = [1, 16], 3, 4
    print(
        f"device {args.device}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}"
    )
    print(HEADER)
    result = run_packing_bench(
        args.device,
        ks,
        tasks=args.tasks.split(","),
        epochs=epochs,
        baselines=args.baselines.split(","),
        max_process_k=max_process_k,
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
