"""``lrsearch worker --pack auto``: pack only where packing was measured to help.

The rule, from ``bench/packing.py`` (docs/benchmarks.md, "Packing"), per
pack key and device:

- a model :func:`~lrsearch.workers.packing.pack_key` refuses (``None``): one
  trial at a time, as with any K;
- on CPU, a packable model without convolutions (an MLP): ``AUTO_CPU_DENSE``
  (16) trials per pack; the digits MLP trained 2.0x as many trials per
  CPU-hour at K = 16 as one at a time, and K = 32 added little;
- on CPU, a model with a convolution: one at a time; the small CNN trained
  fewer trials per CPU-hour packed than one at a time (0.4x to 1.0x, the
  larger K the worse: its time is convolution arithmetic, not overhead);
- any other device (CUDA): one at a time. Packing is expected to pay most
  there, but it has not been measured; give ``--pack K`` to use it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch

from lrsearch.workers.settings import PackSetting

__all__ = ["AUTO_CPU_CONV", "AUTO_CPU_DENSE", "AUTO_OTHER_DEVICE", "pack_limit"]

AUTO_CPU_DENSE = 16
AUTO_CPU_CONV = 1
AUTO_OTHER_DEVICE = 1


def _convolutional(key: tuple[Hashable, ...]) -> bool:
    """Whether the model of a pack key has a convolution layer.

    The key is ``(task, signature, batch_size, optimizer)``; each entry of the
    signature starts with its layer's class name (``Linear``, ``Conv2d``, ...).
    """
    signature: Any = key[1]
    return any(
        isinstance(layer, tuple) and str(layer[0]).startswith(("Conv", "LazyConv"))
        for layer in signature
    )


def pack_limit(
    setting: PackSetting, key: tuple[Hashable, ...] | None, device: torch.device | str
) -> int:
    """The most trials a pack with ``key`` may hold on ``device``.

    Args:
        setting: The worker's ``pack``: a number is used as it is; ``auto``
            follows the rule in this module's docstring.
        key: The pack key of the pack's first trial (``None``: not packable).
        device: The worker's device.
    """
    if setting != "auto":
        return setting
    if key is None:
        return 1
    if torch.device(device).type != "cpu":
        return AUTO_OTHER_DEVICE
    return AUTO_CPU_CONV if _convolutional(key) else AUTO_CPU_DENSE
