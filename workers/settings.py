"""What a worker process reads from ``LRSEARCH_*``: the one definition of each variable.

``lrsearch worker``'s options override these; an option left out falls back to
its variable, then to the default here. No torch here: the GPU supervisor and
the documentation generator read it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from lrsearch.storage import CommonSettings
from lrsearch.storage._settings import env_name

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

# ``pack``: a pack size K, or ``auto`` (see :mod:`lrsearch.workers._pack_auto`).
PackSetting = int | Literal["auto"]
MAX_PACK = 256

__all__ = [
    "MAX_PACK",
    "THREAD_ENV",
    "PackSetting",
    "WorkerSettings",
    "cpu_cores",
    "default_threads",
    "env_name",
    "parse_pack",
    "resolve_threads",
]


class WorkerSettings(CommonSettings):
    """Everything ``lrsearch worker`` can be told by environment variable."""

    study: str | None = Field(
        default=None, description="Serve only this study (as `--study`); unset: every study."
    )
    device: str = Field(default="auto", description="`auto`, `cpu`, `cuda` or `cuda:N`.")
    bf16: bool = Field(default=False, description="bfloat16 autocast on CUDA (as `--bf16`).")
    gpus: str | None = Field(
        default=None,
        description="One supervised worker process per GPU: `all` or e.g. `0,1` (as `--gpus`); "
        "empty or unset: a single worker.",
    )
    trials_per_gpu: int = Field(
        default=1, ge=1, description="With `LRSEARCH_GPUS`: worker processes per GPU."
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads of each worker's PyTorch (as `--threads`); unset: the host's "
        "cores divided by its worker processes (`OMP_NUM_THREADS` wins if set).",
    )
    local_workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes sharing this host's cores (e.g. containers scaled on "
        "one host); divides the default `threads`. The GPU supervisor sets it for its children.",
    )
    pack: PackSetting = Field(
        default=1,
        description="Train up to this many compatible trials of a study fused together "
        "(as `--pack`; 1 to 256); 1: one trial at a time. `auto`: only where measured to "
        "help: up to 16 for a packable model without convolutions on CPU (2x the trials per "
        "CPU-hour on an MLP), else one at a time (a CNN on CPU got slower packed; CUDA is "
        "not measured yet).",
    )
    stop_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="After SIGTERM/SIGINT, the most seconds before a worker gives its trial "
        "back and exits.",
    )

    worker_label: str | None = Field(
        default=None,
        description="Names the worker in its log lines; the GPU supervisor sets it (`gpu3`).",
    )
    supervisor_pid: int | None = Field(
        default=None,
        description="Set by the GPU supervisor for its children: they stop when it dies.",
    )
    task_npz: str | None = Field(
        default=None,
        description="The `.npz` file of the `npz-classifier` task, unless its "
        "`path` option is given.",
    )

    @field_validator("pack", mode="before")
    @classmethod
    def _pack_value(cls, value: Any) -> PackSetting:
        return parse_pack(value)


def parse_pack(value: Any) -> PackSetting:
    """A ``pack`` setting: ``auto`` (any case) or a whole number from 1 to ``MAX_PACK``.

    Raises:
        ValueError: Anything else, naming the allowed values.
    """
    raw = value.strip().lower() if isinstance(value, str) else value
    if raw == "auto":
        return "auto"
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= MAX_PACK:
        return raw
    raise ValueError(f"pack must be 'auto' or a whole number from 1 to {MAX_PACK}")


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(*, cores: int, workers: int) -> int:
    """Threads per worker so that ``workers`` processes share ``cores`` without oversubscribing."""
    return max(1, cores // max(1, workers))


def resolve_threads(
    settings: WorkerSettings,
    *,
    cores: int | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """A worker's PyTorch thread count: ``threads``, else ``OMP_NUM_THREADS``, else cores / workers.

    Args:
        settings: The worker's settings (``threads``, ``local_workers``).
        cores: Usable cores; default :func:`cpu_cores`.
        env: Where to read ``OMP_NUM_THREADS``; default ``os.environ``.
    """
    if settings.threads is not None:
        return settings.threads
    raw = (os.environ if env is None else env).get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return default_threads(
        cores=cpu_cores() if cores is None else cores, workers=settings.local_workers
    )
