"""``lrsearch worker --gpus``: one worker process per GPU slot, supervised.

Each slot runs a worker command (given by the caller, usually ``lrsearch
worker --device cuda:0 ...``) with ``CUDA_VISIBLE_DEVICES`` pinned to one GPU,
so that every child sees its GPU as ``cuda:0`` and CUDA state (contexts, caches,
an OOM) never crosses GPUs. ``trials_per_gpu`` > 1 starts that many slots per
GPU, for models too small to keep one GPU busy.

The supervisor:

- prefixes every line a child prints with its slot (``[gpu3]``, ``[gpu3.1]``),
  so the logs say which GPU ran which trial;
- restarts a child that dies unexpectedly (non-zero exit or killed), after a
  backoff that doubles from ``restart_backoff_s`` up to ``max_backoff_s``, at
  most ``max_restarts`` times in a row (a child that ran ``stable_after_s``
  resets the count); a child that exits 0 (``--max-trials``, ``--idle-exit``,
  its ``--study`` done) is finished and not restarted;
- forwards SIGTERM/SIGINT to the children and waits for them (a second signal
  is forwarded too, and makes them exit at once); children still alive
  ``stop_timeout_s`` after the first signal are killed;
- exits 0 when every slot finished, 1 when some slot gave up restarting;
- shares the host's CPU cores among the children: each gets ``threads``
  PyTorch threads (default: cores // children, at least 1) through
  ``LRSEARCH_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``, so that K
  children do not each start a thread per core.

Children run in their own session, so a Ctrl-C in the terminal reaches them
once, through the supervisor, rather than twice; on Linux they also get
SIGTERM if the supervisor itself dies (see :func:`follow_supervisor`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO

from lrsearch.workers._errors import DeviceError
from lrsearch.workers.settings import THREAD_ENV, cpu_cores, default_threads, env_name

log = logging.getLogger(__name__)

# Environment variables of the supervisor that must not reach a child: a child
# that saw LRSEARCH_GPUS would start a supervisor of its own.
_SUPERVISOR_ONLY_ENV = (env_name("gpus"), env_name("trials_per_gpu"))
_PR_SET_PDEATHSIG = 1
_SUPERVISOR_PID_ENV = env_name("supervisor_pid")


def visible_devices(env: Mapping[str, str] | None = None) -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES``, or ``None`` when it is unset."""
    raw = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    return [v.strip() for v in raw.split(",") if v.strip()]


def parse_gpus(
    spec: str,
    *,
    device_count: int,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """Turn ``--gpus`` into the ``CUDA_VISIBLE_DEVICES`` value of each GPU's children.

    Args:
        spec: ``all``, or a comma-separated list of GPU indices (as this process
            sees them) and/or GPU UUIDs (``GPU-...``, ``MIG-...``).
        device_count: GPUs this process sees (``torch.cuda.device_count()``).
        check: Check indices against ``device_count``. Off only to run the
            children on CPU with fake GPU ids (``--device cpu``: tests).
        env: Where to read this process's own ``CUDA_VISIBLE_DEVICES``; when it
            is set, index ``i`` means its ``i``-th entry, as it does for CUDA.

    Returns:
        One entry per GPU, in order, without duplicates.

    Raises:
        DeviceError: An empty or malformed list, a duplicate, an index that
            does not exist, or ``all`` (or a checked index) with no GPU visible.
    """
    text = spec.strip()
    if not text:
        raise DeviceError("--gpus is empty; give 'all' or a list such as 0,1")
    if text.lower() == "all":
        if device_count < 1:
            raise DeviceError(
                "--gpus all: no CUDA GPU is visible to this process (torch sees 0 devices). "
                "Check the NVIDIA driver and that torch is a CUDA build, or run "
                "'lrsearch worker --device cpu' without --gpus."
            )
        entries = [str(i) for i in range(device_count)]
    else:
        entries = [p.strip() for p in text.split(",")]
        bad = [p for p in entries if not (p.isdigit() or p.startswith(("GPU-", "MIG-")))]
        if bad:
            raise DeviceError(
                f"--gpus {spec!r}: {bad} are not GPU indices or UUIDs; give 'all' or e.g. 0,1"
            )
        dups = sorted({p for p in entries if entries.count(p) > 1})
        if dups:
            raise DeviceError(f"--gpus {spec!r}: {dups} listed more than once")
        if check:
            if device_count < 1:
                raise DeviceError(
                    f"--gpus {spec!r}: no CUDA GPU is visible to this process "
                    "(torch sees 0 devices)"
                )
            missing = [p for p in entries if p.isdigit() and int(p) >= device_count]
            if missing:
                raise DeviceError(
                    f"--gpus {spec!r}: GPU {', '.join(missing)} does not exist; "
                    f"this process sees {device_count} GPU(s), 0 to {device_count - 1}"
                )
    parent = visible_devices(env)
    if parent is None:
        return entries
    mapped = []
    for entry in entries:
        if not entry.isdigit():
            mapped.append(entry)
        elif int(entry) < len(parent):
            mapped.append(parent[int(entry)])
        else:
            raise DeviceError(
                f"--gpus {spec!r}: GPU {entry} is not among CUDA_VISIBLE_DEVICES={','.join(parent)}"
            )
    return mapped


@dataclass
class _Slot:
    gpu: str
    label: str
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    start_at: float | None = 0.0
    finished: bool = False
    gave_up: bool = False
    readers: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    """Runs and watches one worker process per GPU slot. See the module docstring."""

    def __init__(
        self,
        gpus: Sequence[str],
        command: Sequence[str],
        *,
        trials_per_gpu: int = 1,
        env: Mapping[str, str] | None = None,
        max_restarts: int = 5,
        restart_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        stable_after_s: float = 300.0,
        stop_timeout_s: float = 60.0,
        poll_s: float = 0.2,
        threads: int | None = None,
    ) -> None:
        """Prepare the slots; nothing starts before :meth:`run`.

        Args:
            gpus: ``CUDA_VISIBLE_DEVICES`` value per GPU (see :func:`parse_gpus`).
            command: The worker command line each child runs.
            trials_per_gpu: Worker processes per GPU.
            env: Base environment of the children (default: this process's).
            max_restarts: Restarts in a row before a slot is given up.
            restart_backoff_s: First wait before a restart; doubles each time.
            max_backoff_s: Longest wait before a restart.
            stable_after_s: A child that ran this long resets its restart count.
            stop_timeout_s: After the first stop signal, children still alive
                this long are killed.
            poll_s: How often children are checked.
            threads: CPU threads of each child; default the usable cores
                divided by the number of children, at least 1.
        """
        if trials_per_gpu < 1:
            raise ValueError(f"trials_per_gpu must be at least 1, got {trials_per_gpu}")
        if not gpus:
            raise ValueError("no GPUs to supervise")
        self.command = list(command)
        base = dict(os.environ if env is None else env)
        for name in _SUPERVISOR_ONLY_ENV:
            base.pop(name, None)
        self._env = base
        self.max_restarts = max_restarts
        self.restart_backoff_s = restart_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_after_s = stable_after_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.slots = [
            _Slot(gpu=gpu, label=_label(gpu, k, trials_per_gpu))
            for gpu in gpus
            for k in range(trials_per_gpu)
        ]
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads or default_threads(cores=cpu_cores(), workers=len(self.slots))
        self._signals: list[int] = []
        self._stop_deadline: float | None = None
        self._out_lock = threading.Lock()

    # -- signals -----------------------------------------------------------------

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Forward ``signum`` to every child; the first call starts the stop timeout.

        Safe to call from a signal handler: it only records the signal; the run
        loop forwards it.
        """
        self._signals.append(signum)

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signum)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    @property
    def stopping(self) -> bool:
        return self._stop_deadline is not None

    # -- running -----------------------------------------------------------------

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Start the children and supervise them until all have exited.

        Returns:
            0 when every slot finished; 1 when some slot was given up.
        """
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            self._install_signals()
        log.info(
            "supervising %d worker process(es) on GPU(s) %s",
            len(self.slots),
            ",".join(dict.fromkeys(s.gpu for s in self.slots)),
        )
        try:
            while True:
                self._forward_signals()
                now = time.monotonic()
                for slot in self.slots:
                    self._check(slot, now)
                if all(s.finished or s.gave_up for s in self.slots):
                    break
                if self._stop_deadline is not None and now > self._stop_deadline:
                    self._kill_all(f"did not stop within {self.stop_timeout_s:.0f} s of the signal")
                time.sleep(self.poll_s)
        finally:
            # Whatever happened to the supervisor, no child outlives it unwatched.
            self._kill_all("still running as the supervisor exits")
            for slot in self.slots:
                if slot.proc is not None:
                    slot.proc.wait()
                for reader in slot.readers:
                    reader.join(timeout=5)
        gave_up = [s.label for s in self.slots if s.gave_up]
        if gave_up:
            log.error("gave up on %s after repeated crashes", ", ".join(gave_up))
            return 1
        log.info("all worker processes have exited")
        return 0

    def _forward_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if self._stop_deadline is None:
                self._stop_deadline = time.monotonic() + self.stop_timeout_s
                log.warning("signal %d: stopping the worker processes", signum)
            else:
                log.warning("signal %d again: the worker processes exit at once", signum)
            for slot in self.slots:
                slot.start_at = None  # nothing (re)starts once stopping
                if slot.proc is not None and slot.proc.poll() is None:
                    slot.proc.send_signal(signum)

    def _check(self, slot: _Slot, now: float) -> None:
        if slot.proc is None:
            if slot.start_at is not None and now >= slot.start_at and not self.stopping:
                self._start(slot, now)
            elif self.stopping and not (slot.finished or slot.gave_up):
                slot.finished = True  # waiting for a restart that will not come
            return
        rc = slot.proc.poll()
        if rc is None:
            return
        ran = now - slot.started
        slot.proc = None
        if rc == 0 or self.stopping:
            log.info("[%s] worker exited (%s)", slot.label, _exit_text(rc))
            slot.finished = True
            return
        if ran >= self.stable_after_s:
            slot.restarts = 0
        if slot.restarts >= self.max_restarts:
            log.error(
                "[%s] worker died (%s); %d restarts in a row failed, giving up",
                slot.label,
                _exit_text(rc),
                slot.restarts,
            )
            slot.gave_up = True
            return
        wait = min(self.restart_backoff_s * 2**slot.restarts, self.max_backoff_s)
        slot.restarts += 1
        slot.start_at = now + wait
        log.warning(
            "[%s] worker died (%s) after %.0f s; restart %d/%d in %.0f s",
            slot.label,
            _exit_text(rc),
            ran,
            slot.restarts,
            self.max_restarts,
            wait,
        )

    def _start(self, slot: _Slot, now: float) -> None:
        env = dict(self._env)
        env["CUDA_VISIBLE_DEVICES"] = slot.gpu
        env[env_name("worker_label")] = slot.label
        env[env_name("threads")] = str(self.threads)
        env[env_name("local_workers")] = str(len(self.slots))
        for name in THREAD_ENV:  # read by OpenMP/MKL as the child's torch starts
            env[name] = str(self.threads)
        env[_SUPERVISOR_PID_ENV] = str(os.getpid())
        # Line by line through the pipes, so prefixed lines appear as they happen.
        env["PYTHONUNBUFFERED"] = "1"
        slot.proc = subprocess.Popen(
            self.command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        slot.started = now
        slot.start_at = None
        prefix = f"[{slot.label}] ".encode()
        stdout, stderr = slot.proc.stdout, slot.proc.stderr
        if stdout is None or stderr is None:  # pragma: no cover - both are PIPE above
            raise RuntimeError("worker process started without output pipes")
        slot.readers = [
            self._pump(stdout, _binary(sys.stdout), prefix),
            self._pump(stderr, _binary(sys.stderr), prefix),
        ]
        log.info(
            "[%s] started worker pid %d with CUDA_VISIBLE_DEVICES=%s, %d CPU thread(s)",
            slot.label,
            slot.proc.pid,
            slot.gpu,
            self.threads,
        )

    def _pump(self, source: IO[bytes], sink: IO[bytes], prefix: bytes) -> threading.Thread:
        def copy() -> None:
            for line in iter(source.readline, b""):
                with self._out_lock:
                    sink.write(prefix + line)
                    sink.flush()
            source.close()

        thread = threading.Thread(target=copy, daemon=True, name="pump")
        thread.start()
        return thread

    def _kill_all(self, why: str) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                log.error("[%s] %s; killing it", slot.label, why)
                slot.proc.kill()


def _label(gpu: str, k: int, per_gpu: int) -> str:
    name = f"gpu{gpu}" if gpu.isdigit() else gpu
    return name if per_gpu == 1 else f"{name}.{k}"


def _exit_text(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def _binary(stream: IO[str]) -> IO[bytes]:
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None else stream  # type: ignore[return-value]


def follow_supervisor(env: Mapping[str, str] | None = None) -> None:
    """In a supervised worker: get SIGTERM when the supervisor dies (Linux), or stop now.

    Called by the worker at start-up when ``LRSEARCH_SUPERVISOR_PID`` is set.
    Done in the child itself rather than in a ``preexec_fn``, which would run
    Python between fork and exec in a supervisor that has threads.
    """
    raw = (os.environ if env is None else env).get(_SUPERVISOR_PID_ENV)
    if not raw:
        return
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # The supervisor may have died before the line above took effect.
    if os.getppid() != int(raw):
        os.kill(os.getpid(), signal.SIGTERM)
