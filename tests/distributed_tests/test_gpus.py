"""GPU code paths, tested with what runs on a machine without a GPU.

- ``--gpus`` parsing, and ``--gpus`` with no GPU visible: clear errors.
- The supervisor with fake GPU ids: children train on CPU (``--device cpu``)
  while ``CUDA_VISIBLE_DEVICES`` is pinned per child, exactly as on a GPU box.
- CUDA out of memory: a real ``torch.cuda.OutOfMemoryError`` raised by a test
  task that is registered like a third-party task (no GPU needed to raise it).

``bench/gpu_check.py`` checks the same paths on a real GPU.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import validate_fixed_params
from lrsearch.workers import DeviceError
from lrsearch.workers.loop import Worker, WorkerOptions, device_label
from lrsearch.workers.supervisor import Supervisor, parse_gpus
from tests.distributed_tests.conftest import (
    Procs,
    assert_exact_budget,
    trials_of,
    wait_for,
    worker_env,
    worker_sessions,
)

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks behaviour without a GPU")

# -- parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "count", "env", "expected"),
    [
        ("all", 2, {}, ["0", "1"]),
        ("0,1", 4, {}, ["0", "1"]),
        (" 3 , 1 ", 4, {}, ["3", "1"]),
        ("GPU-8e2b1c7a,0", 1, {}, ["GPU-8e2b1c7a", "0"]),
        # Indices are as this process sees them: under CUDA_VISIBLE_DEVICES=2,3
        # GPU 1 is physical GPU 3, and "all" is just those two.
        ("all", 2, {"CUDA_VISIBLE_DEVICES": "2,3"}, ["2", "3"]),
        ("1", 2, {"CUDA_VISIBLE_DEVICES": "2,3"}, ["3"]),
    ],
)
def test_parse_gpus(spec: str, count: int, env: dict[str, str], expected: list[str]) -> None:
    assert parse_gpus(spec, device_count=count, env=env) == expected


@pytest.mark.parametrize(
    ("spec", "count", "check", "message"),
    [
        ("all", 0, True, "no CUDA GPU is visible"),
        ("all", 0, False, "no CUDA GPU is visible"),
        ("0", 0, True, "no CUDA GPU is visible"),
        ("2", 2, True, "GPU 2 does not exist"),
        ("0,0", 2, True, "listed more than once"),
        ("0,x", 2, True, "not GPU indices"),
        ("", 2, True, "empty"),
        ("-1", 2, True, "not GPU indices"),
    ],
)
def test_parse_gpus_errors(spec: str, count: int, check: bool, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        parse_gpus(spec, device_count=count, check=check, env={})


def test_fake_gpu_ids_are_accepted_unchecked_for_cpu_children() -> None:
    assert parse_gpus("0,1", device_count=0, check=False, env={}) == ["0", "1"]


def test_device_label_names_the_physical_gpu() -> None:
    # torch.device needs no GPU to exist.
    cuda0 = torch.device("cuda", 0)
    assert device_label(cuda0, {"CUDA_VISIBLE_DEVICES": "3"}) == "cuda:3"
    assert device_label(cuda0, {}) == "cuda:0"
    assert device_label(torch.device("cpu"), {"CUDA_VISIBLE_DEVICES": "3"}) == "cpu"


# -- the supervisor with plain commands ---------------------------------------------


def test_supervisor_pins_each_slot_and_prefixes_its_output(
    capfd: pytest.CaptureFixture[str],
) -> None:
    probe = (
        "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], "
        "os.environ['LRSEARCH_WORKER_LABEL'], os.environ.get('LRSEARCH_GPUS'))"
    )
    env = {**os.environ, "LRSEARCH_GPUS": "0,5"}
    sup = Supervisor(["0", "5"], [sys.executable, "-c", probe], trials_per_gpu=2, env=env)
    assert sup.run(install_signal_handlers=False) == 0
    lines = sorted(capfd.readouterr().out.splitlines())
    # Each child sees its GPU, its label, and no LRSEARCH_GPUS (no nested supervisor).
    assert lines == [
        "[gpu0.0] 0 gpu0.0 None",
        "[gpu0.1] 0 gpu0.1 None",
        "[gpu5.0] 5 gpu5.0 None",
        "[gpu5.1] 5 gpu5.1 None",
    ]


def test_supervisor_restarts_a_crashing_child_with_backoff_then_gives_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sup = Supervisor(
        ["0"],
        [sys.executable, "-c", "raise SystemExit(3)"],
        max_restarts=2,
        restart_backoff_s=0.05,
    )
    started = time.monotonic()
    with caplog.at_level("INFO", logger="lrsearch.workers.supervisor"):
        assert sup.run(install_signal_handlers=False) == 1
    # Two restarts, after 0.05 and 0.1 s.
    assert time.monotonic() - started >= 0.15
    text = caplog.text
    assert text.count("started worker pid") == 3
    assert "restart 1/2 in 0 s" in text
    assert "restart 2/2" in text
    assert "giving up" in text


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_supervised_worker_gets_sigterm_when_its_supervisor_dies(tmp_path: Path) -> None:
    # A stand-in supervisor starts a child that follows it, then dies abruptly.
    # The child notes the SIGTERM in a file (an orphan's exit status is not ours to see).
    marker = tmp_path / "got-sigterm"
    child_code = (
        "import signal, sys, time; from pathlib import Path\n"
        "from workers.supervisor import follow_supervisor\n"
        f"def on_term(*_): Path({str(marker)!r}).touch(); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "follow_supervisor()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent_code = (
        "import os, subprocess, sys\n"
        "env = dict(os.environ, LRSEARCH_SUPERVISOR_PID=str(os.getpid()))\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child_code!r}], env=env,\n"
        "    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)\n"
        "child.stdout.readline()\n"
        "print(child.pid, flush=True)\n"
        "os._exit(9)\n"
    )
    parent = subprocess.run(
        [sys.executable, "-c", parent_code], capture_output=True, text=True, timeout=60
    )
    child_pid = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 10
    while not marker.exists():
        if time.monotonic() > deadline:
            if Path(f"/proc/{child_pid}").exists() and not _zombie(child_pid):
                os.kill(child_pid, signal.SIGKILL)  # still ours: it never got the signal
            pytest.fail("the orphaned child did not get SIGTERM when its supervisor died")
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


# -- lrsearch worker --gpus ---------------------------------------------------------


@no_gpu
@pytest.mark.parametrize("spec", ["all", "0,1"])
def test_gpus_without_a_gpu_is_a_clear_error(procs: Procs, spec: str) -> None:
    env = worker_env("sqlite:///unused.db")
    proc = procs.worker(env, "--gpus", spec)
    assert proc.wait(timeout=60) == 2
    assert "no CUDA GPU is visible" in proc.err
    assert "Traceback" not in proc.err


def test_gpus_rejects_a_device_index(procs: Procs) -> None:
    proc = procs.worker(worker_env("sqlite:///unused.db"), "--gpus", "0", "--device", "cuda:1")
    assert proc.wait(timeout=60) == 2
    assert "use --device auto, cuda or cpu" in proc.err


def _child_pids(text: str, label: str) -> list[int]:
    return [int(p) for p in re.findall(rf"\[{re.escape(label)}\] started worker pid (\d+)", text)]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(
        item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
    )


@pytest.mark.postgres
@pytest.mark.serial  # waits on children that train and restart: timing-sensitive
def test_supervisor_with_fake_gpu_ids_on_cpu_restarts_a_dead_child_and_forwards_sigterm_without_gpu(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs
) -> None:
    record = make_study(n_trials=60, max_epochs=10, batch_size=(32,))
    env = worker_env(pg_url, LRSEARCH_STOP_TIMEOUT_S="10")
    sup = procs.worker(env, "--gpus", "0,1", "--device", "cpu", "--study", record.name)

    def children() -> dict[str, int] | None:
        found = {g: _child_pids(sup.err, g) for g in ("gpu0", "gpu1")}
        return {g: p[-1] for g, p in found.items()} if all(found.values()) else None

    pids = wait_for(children, 30, "both children to start")
    for pid in pids.values():
        procs.adopt(pid)
    for gpu, pid in pids.items():
        child_env = _environ(pid)
        assert child_env["CUDA_VISIBLE_DEVICES"] == gpu.removeprefix("gpu")
        assert child_env["LRSEARCH_WORKER_LABEL"] == gpu
        assert "LRSEARCH_GPUS" not in child_env
    host = os.uname().nodename

    def ran_trials(pid: int) -> bool:
        return any(
            t.user_attrs.get("worker") == f"{host}:{pid}" and t.state == TrialState.COMPLETE
            for t in trials_of(pg, record.name)
        )

    wait_for(lambda: all(ran_trials(p) for p in pids.values()), 90, "both children to train")
    # Logs say which slot ran which trial: every line of a child carries its prefix.
    for gpu in ("gpu0", "gpu1"):
        line = re.compile(rf"^\[{gpu}\] {re.escape(record.name)} #\d+ ", re.MULTILINE)
        wait_for(lambda line=line: line.search(sup.out), 10, f"a trial line from {gpu}")
    assert re.search(r"^\[gpu1\] .*trial #\d+ started on cpu \(gpu1\)", sup.err, re.MULTILINE)
    for t in trials_of(pg, record.name):
        assert t.user_attrs.get("device", "cpu") == "cpu"

    # A child that dies is restarted (after the first backoff, 1 s).
    os.kill(pids["gpu1"], signal.SIGKILL)
    restarted = wait_for(
        lambda: (p := _child_pids(sup.err, "gpu1")) and len(p) == 2 and p[-1],
        30,
        "the killed child to be restarted",
    )
    procs.adopt(restarted)
    assert "[gpu1] worker died (killed by SIGKILL)" in sup.err
    wait_for(lambda: ran_trials(restarted), 60, "the restarted child to train")

    # SIGTERM to the supervisor reaches every child once; they give their
    # trials back and exit 0, and so does the supervisor.
    sup.popen.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=30) == 0, sup.describe()
    assert sup.err.count("signal 15: stopping after the current epoch") == 2
    assert "second signal" not in sup.err
    assert sup.err.count("worker exited (exit code 0)") == 2
    for pid in (pids["gpu0"], restarted):
        wait_for(lambda pid=pid: worker_sessions(pg, pid) == 0, 10, f"sessions of child {pid}")
    interrupted = [
        t
        for t in trials_of(pg, record.name)
        if str(t.user_attrs.get("error", "")).startswith("interrupted")
    ]
    assert interrupted, "the children were stopped mid-trial and gave their trials back"


# -- CUDA out of memory ---------------------------------------------------------------

OOM_PLAN = [256, 32, 256, 32]  # batch sizes in claim order; 256 "does not fit"


def _enqueue(pg: storage.Backend, record: storage.StudyRecord, batch_sizes: list[int]) -> None:
    study = storage.load_optuna_study(pg, record)
    for bs in batch_sizes:
        params = {
            "schedule": "step",
            "step.step_size": 2,
            "step.gamma": 0.5,
            "learning_rate": 0.05,
            "batch_size": bs,
            "dropout": 0.0,
            "weight_init": "default",
        }
        validate_fixed_params(record.definition, params)
        storage.enqueue_fixed(pg, study, record, params)


@pytest.mark.postgres
@pytest.mark.serial  # timing-sensitive under load
def test_cuda_oom_raised_by_a_plugin_task_prunes_the_trial_and_the_worker_goes_on_without_gpu(
    pg_url: str, pg: storage.Backend, make_study, procs: Procs, plugin_path: str
) -> None:
    record = make_study(n_trials=4, task="test-oom", batch_size=(32, 256))
    _enqueue(pg, record, OOM_PLAN)
    env = worker_env(pg_url, PYTHONPATH=plugin_path)
    proc = procs.worker(env, "--study", record.name, "--device", "cpu")
    assert proc.wait(timeout=90) == 0, proc.describe()

    trials = assert_exact_budget(pg, record)
    assert [t.params["batch_size"] for t in trials] == OOM_PLAN
    # PRUNED, not FAIL: an OOM marks the batch size infeasible.
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.COMPLETE] * 2
    for t in trials[::2]:
        assert str(t.user_attrs["error"]).startswith("oom: CUDA out of memory")
        assert t.user_attrs["infeasible"] == {"batch_size": 256, "device": "cpu", "memory_gb": None}
        assert "retry_of" not in t.user_attrs  # an OOM is the configuration's, not retried
    assert "CUDA out of memory on cpu" in proc.err
    assert "worker done: 4 trials" in proc.err


@pytest.mark.postgres
def test_oom_in_process_empties_the_cuda_cache_mocked_empty_cache_without_gpu(
    pg_url: str,
    pg: storage.Backend,
    make_study,
    plugin_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for entry in reversed(plugin_path.split(os.pathsep)):
        monkeypatch.syspath_prepend(entry)
    # No CUDA here, so the real empty_cache would do nothing visible: count calls.
    calls: list[bool] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(True))
    record = make_study(n_trials=2, task="test-oom", batch_size=(32, 256))
    _enqueue(pg, record, [256, 32])
    worker = Worker(
        WorkerOptions(
            storage_url=pg_url, study=record.name, device="cpu", install_signal_handlers=False
        )
    )
    stats = worker.run()
    assert stats.by_state == {"PRUNED": 1, "COMPLETE": 1}
    assert calls == [True]
    assert_exact_budget(pg, record)
    # The in-process worker closed every session it opened.
    assert worker_sessions(pg, os.getpid()) == 0
