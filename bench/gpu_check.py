"""One short check of the GPU code paths, for a machine with CUDA (under 5 minutes).

    .venv/bin/python bench/gpu_check.py [--keep]

Checks, each reported PASS/FAIL with numbers, then a summary:

1. ``cuda-vs-cpu``: one digits-mlp trial on ``cuda:0`` and on CPU with the same
   configuration and seed: the lr_curve is identical, the final validation
   accuracy within 0.03.
2. ``bf16``: the same trial with bfloat16 autocast: completes, accuracy within
   0.05 of fp32 (skipped if the GPU has no bf16).
3. ``oom``: a worker runs a study whose first trial allocates GPU memory until
   CUDA runs out: that trial ends PRUNED with error ``oom: ...`` and user attr
   ``infeasible`` naming the card and its memory, the reserved memory goes
   back down, and the same worker completes the next trial.
4. ``gpus-all``: ``lrsearch worker --gpus all`` on a small study: exits 0, one
   worker process per GPU (``[gpuN]`` prefixes), trials record ``cuda:N``.
5. ``throughput``: digits-mlp trials per minute through a worker, GPU vs CPU.
6. ``packing``: one pack per optimizer (every schedule type, dropout 0) on
   ``cuda:0`` against each trial trained alone on ``cuda:0``: identical
   lr_curves, metrics within 1e-3; then ``lrsearch``'s worker with
   ``--pack 4`` completes a small study on the GPU.
7. ``packing-speed``: ``bench/packing.py``'s measurement on ``cuda:0``
   (digits MLP and a small CNN, K = 1, 4, 16, 32, 3 epochs): trials per hour
   packed vs one at a time vs K processes; the goal (4x one at a time, 1.5x K
   processes) is reported, not asserted.

Storage is a temporary SQLite file (several processes on one machine may
share it), so no database server is needed. Without CUDA the script says so
and exits 0 without checking anything.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from lrsearch import storage
from lrsearch.search_space import TrialConfig, parse_definition, validate_fixed_params
from lrsearch.workers.loop import Worker, WorkerOptions
from lrsearch.workers.packing import train_pack
from lrsearch.workers.tasks import DigitsMLPTask
from lrsearch.workers.training import train_trial

# A sibling script module: bench/ is on sys.path when this file runs as a script.
from packing import SCHEDULES as PACK_SCHEDULE_TYPES  # isort: skip
from packing import run_packing_bench  # isort: skip

LRSEARCH = Path(sys.executable).with_name("lrsearch")
BASE_PARAMS: dict[str, Any] = {
    "schedule": "step",
    "step.step_size": 3,
    "step.gamma": 0.5,
    "learning_rate": 0.05,
    "dropout": 0.1,
    "weight_init": "default",
}

# A task that allocates until CUDA runs out when its batch is 128 or more; it is
# registered as an entry point, the way a third-party task would be.
OOM_TASK_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn
    from lrsearch.workers.tasks import DigitsMLPTask


    class _Greedy(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if self.training and x.shape[0] >= 128:
                hoard = []
                for _ in range(100_000):  # 1 GiB at a time until CUDA says no
                    hoard.append(torch.empty(2**28, dtype=torch.float32, device=x.device))
            return self.inner(x)


    class GreedyDigits(DigitsMLPTask):
        name = "gpu-check-oom"

        def build_model(self, dropout, weight_init):
            return _Greedy(super().build_model(dropout, weight_init))
    """
)


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped
    detail: str
    seconds: float


def _config(batch_size: int = 64, epochs: int = 10) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "schedule": {"type": "step", "step_size": 3, "gamma": 0.5},
            "learning_rate": 0.05,
            "batch_size": batch_size,
            "dropout": 0.1,
            "max_epochs": epochs,
        }
    )


def check_cuda_vs_cpu() -> tuple[bool, str]:
    task = DigitsMLPTask()
    cpu = train_trial(_config(), task, device="cpu", seed=0)
    gpu = train_trial(_config(), task, device="cuda:0", seed=0)
    same_lr = cpu.lr_curve == gpu.lr_curve
    acc_cpu = cpu.metrics[-1]["val_accuracy"]
    acc_gpu = gpu.metrics[-1]["val_accuracy"]
    ok = same_lr and abs(acc_cpu - acc_gpu) <= 0.03
    return ok, (
        f"lr_curve identical: {same_lr} ({len(gpu.lr_curve)} epochs); "
        f"val_accuracy cpu {acc_cpu:.4f} vs cuda {acc_gpu:.4f}"
    )


def check_bf16() -> tuple[bool | None, str]:
    if not torch.cuda.is_bf16_supported():
        return None, f"{torch.cuda.get_device_name(0)} has no bf16"
    task = DigitsMLPTask()
    fp32 = train_trial(_config(), task, device="cuda:0", seed=0)
    bf16 = train_trial(_config(), task, device="cuda:0", seed=0, bf16=True)
    a32, a16 = fp32.metrics[-1]["val_accuracy"], bf16.metrics[-1]["val_accuracy"]
    ok = bf16.status == "complete" and abs(a32 - a16) <= 0.05 and bf16.lr_curve == fp32.lr_curve
    return ok, f"status {bf16.status}; val_accuracy fp32 {a32:.4f} vs bf16 {a16:.4f}"


def _study(backend: storage.Backend, task: str, n_trials: int, epochs: int) -> storage.StudyRecord:
    definition = parse_definition(
        {
            "name": f"gpu-check-{uuid.uuid4().hex[:8]}",
            "task": task,
            "budget": {"n_trials": n_trials, "max_epochs": epochs, "max_retries": 0},
            "sampler": {"type": "random", "seed": 0},
            "pruner": {"type": "none"},
            "search_space": {"warmup_epochs": 0, "batch_size": [32, 64, 128, 256]},
        }
    )
    return storage.create_study(backend, definition)


def _enqueue(backend: storage.Backend, record: storage.StudyRecord, batch_sizes: list[int]) -> None:
    study = storage.load_optuna_study(backend, record)
    for bs in batch_sizes:
        params = {**BASE_PARAMS, "batch_size": bs}
        validate_fixed_params(record.definition, params)
        storage.enqueue_fixed(backend, study, record, params)


def _trials(
    backend: storage.Backend, record: storage.StudyRecord
) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=record.optuna_name, storage=backend.optuna_storage)
    return study.get_trials()


def check_oom(backend: storage.Backend, plugin_dir: Path) -> tuple[bool, str]:
    sys.path[:0] = [str(plugin_dir)]
    record = _study(backend, "gpu-check-oom", n_trials=2, epochs=3)
    _enqueue(backend, record, [256, 32])  # the first trial hoards, the second fits
    torch.cuda.empty_cache()
    reserved_before = torch.cuda.memory_reserved(0)
    worker = Worker(
        WorkerOptions(
            storage_url=backend.url,
            study=record.name,
            device="cuda:0",
            install_signal_handlers=False,
        )
    )
    stats = worker.run()
    reserved_after = torch.cuda.memory_reserved(0)
    trials = _trials(backend, record)
    states = [t.state.name for t in trials]
    error = str(trials[0].user_attrs.get("error", ""))
    infeasible = trials[0].user_attrs.get("infeasible") or {}
    gib = 2**30
    ok = (
        states == ["PRUNED", "COMPLETE"]
        and error.startswith("oom")
        and infeasible.get("device") == torch.cuda.get_device_name(0)
        and infeasible.get("memory_gb", 0) > 0
        and stats.trials == 2
        and reserved_after <= reserved_before + gib
    )
    return ok, (
        f"states {states}; error {error[:80]!r}; infeasible {infeasible}; reserved memory "
        f"{reserved_before / gib:.2f} GiB before, {reserved_after / gib:.2f} GiB after"
    )


def check_gpus_all(backend: storage.Backend, plugin_dir: Path) -> tuple[bool, str]:
    n_gpus = torch.cuda.device_count()
    record = _study(backend, "digits-mlp", n_trials=4 * n_gpus, epochs=5)
    env = {
        **os.environ,
        "LRSEARCH_STORAGE": backend.url,
        "PYTHONPATH": str(plugin_dir),
        "LRSEARCH_HEARTBEAT_S": "2",
        "LRSEARCH_GRACE_S": "20",
    }
    env.pop("LRSEARCH_GPUS", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(
        [str(LRSEARCH), "worker", "--gpus", "all", "--study", record.name],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    prefixes = set(re.findall(r"^\[(gpu\d+)\]", proc.stdout + proc.stderr, re.MULTILINE))
    trials = _trials(backend, record)
    devices = sorted({str(t.user_attrs.get("device")) for t in trials})
    done = sum(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in trials)
    expected = {f"gpu{i}" for i in range(n_gpus)}
    ok = proc.returncode == 0 and prefixes == expected and done == record.n_trials
    ok = ok and all(d.startswith("cuda:") for d in devices)
    detail = (
        f"exit {proc.returncode}; {n_gpus} GPU(s); log prefixes {sorted(prefixes)}; "
        f"trial devices {devices}; {done}/{record.n_trials} finished"
    )
    if proc.returncode != 0:
        detail += "\n" + textwrap.indent(proc.stderr[-2000:], "    ")
    return ok, detail


def check_throughput(backend: storage.Backend) -> tuple[bool, str]:
    rates = {}
    for device in ("cuda:0", "cpu"):
        record = _study(backend, "digits-mlp", n_trials=8, epochs=10)
        _enqueue(backend, record, [64] * 8)  # the same work on both devices
        worker = Worker(
            WorkerOptions(
                storage_url=backend.url,
                study=record.name,
                device=device,
                install_signal_handlers=False,
            )
        )
        # Warm-up outside the clock: CUDA context, cuBLAS handles, lazy imports.
        train_trial(_config(epochs=1), DigitsMLPTask(), device=device, seed=0)
        started = time.perf_counter()
        stats = worker.run()
        rates[device] = 60.0 * stats.trials / (time.perf_counter() - started)
    ratio = rates["cuda:0"] / rates["cpu"]
    return True, (
        f"digits-mlp, 10 epochs, batch 64: {rates['cuda:0']:.1f} trials/min on cuda:0, "
        f"{rates['cpu']:.1f} on cpu ({ratio:.2f}x; a tiny MLP is launch-bound on a GPU)"
    )


PACK_RATES = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adagrad": 0.02}


def check_packing(backend: storage.Backend, device: str = "cuda:0") -> tuple[bool, str]:
    task, worst, problems = DigitsMLPTask(), 0.0, []
    for optimizer, lr in PACK_RATES.items():
        configs = [
            TrialConfig.model_validate(
                {
                    "schedule": schedule,
                    "optimizer": optimizer,
                    "learning_rate": lr * (0.5 + 0.25 * i),
                    "batch_size": 64,
                    "dropout": 0.0,  # on CUDA a pack's dropout masks differ from a solo run's
                    "max_epochs": 3,
                }
            )
            for i, schedule in enumerate(PACK_SCHEDULE_TYPES)
        ]
        seeds = list(range(len(configs)))
        packed = train_pack(configs, task, seeds=seeds, data_seed=0, device=device)
        for config, seed, got in zip(configs, seeds, packed, strict=True):
            alone = train_trial(config, task, seed=seed, data_seed=0, device=device)
            if got.lr_curve != alone.lr_curve:
                problems.append(f"{optimizer}/{config.schedule.type}: lr_curve differs")
            for ours, theirs in zip(got.metrics, alone.metrics, strict=True):
                for key in ("train_loss", "val_loss", "val_accuracy"):
                    worst = max(worst, abs(ours[key] - theirs[key]))
    if worst > 1e-3:
        problems.append(f"largest metric difference {worst:.2e} > 1e-3")
    record = _study(backend, "digits-mlp", n_trials=8, epochs=3)
    worker = Worker(
        WorkerOptions(
            storage_url=backend.url,
            study=record.name,
            device=device,
            pack=4,
            install_signal_handlers=False,
        )
    )
    stats = worker.run()
    trials = _trials(backend, record)
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    devices = {t.user_attrs.get("device") for t in trials}
    if len(done) != 8:
        problems.append(f"--pack 4 worker finished {len(done)} of 8 trials ({stats})")
    return not problems, (
        f"5 optimizers x 6 schedules packed vs alone on {device}: largest metric "
        f"difference {worst:.2e}; --pack 4 worker: {len(done)}/8 trials "
        f"on {sorted(map(str, devices))}" + (f"; problems: {problems}" if problems else "")
    )


def check_packing_speed() -> tuple[bool, str]:
    result = run_packing_bench(
        "cuda:0", (1, 4, 16, 32), tasks=("digits", "cnn"), epochs=3, max_process_k=16
    )
    lines = []
    for row in result["rows"]:
        packed = row["packed_trials_per_hour"]
        vs_seq = packed / row["sequential_trials_per_hour"]
        vs_proc = (
            f"{packed / row['processes_trials_per_hour']:.2f}x"
            if "processes_trials_per_hour" in row
            else "-"
        )
        lines.append(
            f"{row['task']} K={row['k']}: {packed:,.0f} trials/h packed, "
            f"{vs_seq:.2f}x one at a time, {vs_proc} K processes"
        )
    best = [r for r in result["rows"] if r["k"] == 16]
    met = all(
        r["packed_trials_per_hour"] >= 4 * r["sequential_trials_per_hour"]
        and r["packed_trials_per_hour"] >= 1.5 * r.get("processes_trials_per_hour", 0.0)
        for r in best
    )
    return True, (
        f"{result['device_name']}; goal at K=16 (4x one at a time, 1.5x K processes) "
        f"{'met' if met else 'NOT met'}:\n    " + "\n    ".join(lines)
    )


def _run(name: str, fn: Callable[[], tuple[bool | None, str]]) -> Check:
    started = time.perf_counter()
    try:
        ok, detail = fn()
    except Exception:
        ok, detail = False, "raised:\n" + textwrap.indent(traceback.format_exc(), "    ")
    check = Check(name, ok, detail, time.perf_counter() - started)
    status = {True: "PASS", False: "FAIL", None: "SKIP"}[check.ok]
    print(f"[{status}] {name} ({check.seconds:.1f} s): {detail}", flush=True)
    return check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(
            "gpu_check: CUDA is not available here "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
            "nothing to check. Run it on a machine with an NVIDIA GPU."
        )
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPUs: {names}", flush=True)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    plugin = workdir / "plugin"
    info = plugin / "gpu_check_tasks-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gpu-check-tasks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[lrsearch.tasks]\ngpu-check-oom = gpu_check_tasks:GreedyDigits\n"
    )
    (plugin / "gpu_check_tasks.py").write_text(OOM_TASK_MODULE)
    backend = storage.open_backend(f"sqlite:///{workdir / 'gpu_check.db'}")
    checks = [
        _run("cuda-vs-cpu", check_cuda_vs_cpu),
        _run("bf16", check_bf16),
        _run("oom", lambda: check_oom(backend, plugin)),
        _run("gpus-all", lambda: check_gpus_all(backend, plugin)),
        _run("throughput", lambda: check_throughput(backend)),
        _run("packing", lambda: check_packing(backend)),
        _run("packing-speed", check_packing_speed),
    ]
    backend.dispose()
    failed = [c.name for c in checks if c.ok is False]
    print(
        f"\nsummary: {sum(c.ok is True for c in checks)} passed, {len(failed)} failed, "
        f"{sum(c.ok is None for c in checks)} skipped in {time.perf_counter() - started:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    if args.keep:
        print(f"storage kept in {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
