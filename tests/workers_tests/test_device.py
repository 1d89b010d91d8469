"""Device resolution. This machine has no GPU: the CUDA tests cover the no-GPU branch."""

from __future__ import annotations

import contextlib

import pytest
import torch

from lrsearch.workers import DeviceError, WorkerError, resolve_device
from lrsearch.workers.device import autocast_context

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="covers the no-GPU branch")


@pytest.mark.parametrize("spec", ["cpu", "CPU", " cpu ", torch.device("cpu")])
def test_cpu_resolves(spec: str | torch.device) -> None:
    assert resolve_device(spec) == torch.device("cpu")


@no_gpu
def test_auto_falls_back_to_cpu_without_gpu() -> None:
    assert resolve_device("auto") == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_request_raises_device_error_without_gpu(spec: str) -> None:
    with pytest.raises(DeviceError, match="CUDA is not available") as info:
        resolve_device(spec)
    assert isinstance(info.value, WorkerError)


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "cuda:", "mps", ""])
def test_unknown_device_spec_is_rejected(spec: str) -> None:
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(spec)


def test_bf16_autocast_is_a_no_op_off_cuda() -> None:
    assert isinstance(autocast_context(torch.device("cpu"), True), contextlib.nullcontext)
