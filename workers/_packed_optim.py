"""One optimizer step for K stacked parameter rows, each with its own lr, weight decay and step.

The update rules are those of ``torch.optim`` (single-tensor path, default
hyperparameters) for every optimizer :func:`workers._schedules.build_optimizer`
builds, written for a ``[K, P]`` tensor whose row ``k`` is one trial's
parameters. The per-row scalars (learning rate, bias corrections, decay
factors) are computed on the host in double precision exactly as
``torch.optim`` computes them, once per epoch for every batch, and copied to
the device in one transfer; the step itself is a handful of element-wise
kernels over the whole ``[K, P]`` tensor.
"""

from __future__ import annotations

import torch

from lrsearch.workers._schedules import SGD_MOMENTUM

__all__ = ["FusedOptimizer"]

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
# torch.optim's defaults.
_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
_RMSPROP_ALPHA = 0.99
_RMSPROP_EPS = 1e-8
_ADAGRAD_EPS = 1e-10

_STATE_NAMES: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum_buffer",),
    "adam": ("exp_avg", "exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq"),
    "rmsprop": ("square_avg",),
    "adagrad": ("sum",),
}


class FusedOptimizer:
    """The state and update of one optimizer kind over ``[K, P]`` stacked rows.

    Rows are added with :meth:`add_row` and dropped with :meth:`keep_rows`;
    each carries its own weight decay and step count, so a row added late gets
    the bias correction of its own first step.
    """

    def __init__(self, name: str, row_size: int, device: torch.device) -> None:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}")
        self.name = name
        self._device = device
        self._state = {key: torch.zeros(0, row_size, device=device) for key in _STATE_NAMES[name]}
        self._decay: list[float] = []
        self._steps: list[int] = []
        self._decay_rows = torch.zeros(0, 1, device=device)

    def add_row(self, weight_decay: float) -> None:
        """Append a row with fresh (zero) state."""
        for key, value in self._state.items():
            self._state[key] = torch.cat([value, value.new_zeros(1, value.shape[1])])
        self._decay.append(weight_decay)
        self._steps.append(0)
        self._decay_rows = _column(self._decay, self._device)

    def keep_rows(self, index: list[int]) -> None:
        """Keep only the rows at ``index``, in that order."""
        rows = torch.tensor(index, dtype=torch.long, device=self._device)
        for key, value in self._state.items():
            self._state[key] = value.index_select(0, rows)
        self._decay = [self._decay[i] for i in index]
        self._steps = [self._steps[i] for i in index]
        self._decay_rows = _column(self._decay, self._device)

    def epoch_scalars(self, lrs: list[list[float]]) -> dict[str, torch.Tensor]:
        """Per-batch, per-row scalars for one epoch; ``lrs[k][b]`` is row k's lr at batch b.

        Returns:
            Tensors ``[batches, K, 1]`` on the device, indexed by batch in :meth:`step`.
        """
        batches = len(lrs[0])
        wanted: dict[str, list[float]] = {}
        for k, row in enumerate(lrs):
            decay, done = self._decay[k], self._steps[k]
            for b, lr in enumerate(row):
                for name, value in self._scalars(lr, decay, done + b + 1).items():
                    wanted.setdefault(name, []).append(value)
        for k in range(len(lrs)):
            self._steps[k] += batches
        if not wanted:
            return {}
        table = torch.tensor(list(wanted.values()), dtype=torch.float64)
        # [names, K * batches] -> [names, batches, K, 1], float32 as torch.optim casts them.
        table = table.view(len(wanted), len(lrs), batches).transpose(1, 2).unsqueeze(-1)
        table = table.to(torch.float32)
        if self._device.type == "cuda":
            table = table.pin_memory()  # an asynchronous copy: no wait for the queued batches
        moved = table.to(self._device, non_blocking=True)
        return dict(zip(wanted, moved.unbind(0), strict=True))

    def _scalars(self, lr: float, decay: float, step: int) -> dict[str, float]:
        if self.name in ("adam", "adamw"):
            beta1, beta2 = _BETAS
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            values = {
                "neg_step": -(lr / bias_correction1),
                "bias_correction2_sqrt": bias_correction2**0.5,
            }
            if self.name == "adamw":
                values["decay"] = 1 - lr * decay
            return values
        # sgd and rmsprop use lr as it is; adagrad's lr_decay is 0: clr = lr / 1.
        return {"neg_lr": -lr}

    @torch.no_grad()
    def step(
        self, param: torch.Tensor, grad: torch.Tensor, batch: int, scalars: dict[str, torch.Tensor]
    ) -> None:
        """Update ``param`` ``[K, P]`` in place from ``grad`` with batch ``batch``'s scalars."""
        at = {name: value[batch] for name, value in scalars.items()}
        coupled = self.name != "adamw" and any(d != 0 for d in self._decay)
        if coupled:
            grad = grad.addcmul(param, self._decay_rows)
        if self.name == "sgd":
            buf = self._state["momentum_buffer"]
            buf.mul_(SGD_MOMENTUM).add_(grad)
            param.addcmul_(buf, at["neg_lr"])
        elif self.name in ("adam", "adamw"):
            if self.name == "adamw" and any(d != 0 for d in self._decay):
                param.mul_(at["decay"])
            exp_avg, exp_avg_sq = self._state["exp_avg"], self._state["exp_avg_sq"]
            beta1, beta2 = _BETAS
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / at["bias_correction2_sqrt"]).add_(_ADAM_EPS)
            param.add_(exp_avg.mul(at["neg_step"]).div_(denom))
        elif self.name == "rmsprop":
            square_avg = self._state["square_avg"]
            square_avg.mul_(_RMSPROP_ALPHA).addcmul_(grad, grad, value=1 - _RMSPROP_ALPHA)
            avg = square_avg.sqrt().add_(_RMSPROP_EPS)
            param.add_(grad.mul(at["neg_lr"]).div_(avg))
        else:
            state_sum = self._state["sum"]
            state_sum.addcmul_(grad, grad, value=1)
            std = state_sum.sqrt().add_(_ADAGRAD_EPS)
            param.add_(grad.mul(at["neg_lr"]).div_(std))

    def release(self) -> None:
        """Drop the state tensors."""
        self._state.clear()


def _column(values: list[float], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(-1, 1).to(device)
