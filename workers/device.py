"""Choosing the torch device a worker trains on, mixed precision on it, and its CPU threads."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import MutableMapping
from contextlib import AbstractContextManager

import torch

from lrsearch.workers._errors import DeviceError
from lrsearch.workers.settings import THREAD_ENV

_CUDA_SPEC = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn a device request into a usable :class:`torch.device`.

    Args:
        spec: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``
            or ``"cuda:N"``; a :class:`torch.device` is checked the same way.

    Returns:
        The device, with an explicit index for CUDA (``cuda:0`` for ``"cuda"``).

    Raises:
        DeviceError: The spec is not one of the forms above, CUDA was asked for
            but is not available, or the CUDA index does not exist.
    """
    text = str(spec).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA_SPEC.match(text)
    if match is None:
        raise DeviceError(f"unknown device {str(spec)!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {text!r} was requested but CUDA is not available "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})"
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {text!r} does not exist; this machine has {count} GPU(s)")
    return torch.device("cuda", index)


def autocast_context(device: torch.device, bf16: bool) -> AbstractContextManager[object]:
    """The autocast context for a forward pass: bfloat16 on CUDA when asked, else a no-op.

    Args:
        device: The device the model runs on.
        bf16: Whether bfloat16 mixed precision was requested. Ignored off CUDA.

    Raises:
        DeviceError: bf16 was requested on a GPU that does not support it.
    """
    if not (bf16 and device.type == "cuda"):
        return contextlib.nullcontext()
    if not torch.cuda.is_bf16_supported():
        raise DeviceError(f"bf16 was requested but {device} does not support bfloat16")
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)


def apply_threads(threads: int, env: MutableMapping[str, str] | None = None) -> None:
    """Limit this worker's CPU threads to ``threads``: PyTorch's, and those of its children.

    Without a limit each of K workers on a host uses every core (a 2-core host
    ran at load 12). ``torch.set_num_threads`` sizes the intra-op pool of this
    process; ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` carry the limit to any
    process it starts (data-loading workers, a nested supervisor's children).

    Args:
        threads: Threads for this process, at least 1.
        env: The environment to update; default ``os.environ``.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    target = os.environ if env is None else env
    for name in THREAD_ENV:
        target[name] = str(threads)
