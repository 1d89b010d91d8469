"""Running K copies of one ``nn.Sequential`` model at once, from stacked parameters.

A :class:`PackedModel` is a plan read from one instance of a task's model: the
order of its layers and the shapes of its parameters. The parameters of K
copies live in one ``[K, P]`` tensor (row ``k`` is slot ``k``'s parameters,
flattened in ``named_parameters`` order) and :meth:`PackedModel.forward` runs
all K copies in one pass:

* ``Linear``: one batched matrix product (``baddbmm``) over the slot dimension;
* ``Conv2d``: one grouped convolution, each slot's channels being its own groups;
* parameter-free layers (activations, pooling, ``Flatten``): applied once to
  the whole ``[K * B, ...]`` batch;
* ``Dropout``: a callback that draws each slot's mask at the slot's own rate.

Activations travel in one of three layouts: *shared* (one ``[B, ...]`` batch
seen by every slot, as in evaluation, until the first layer with parameters),
*slot* (``[K, B, ...]``) and *channel* (``[B, K * C, H, W]``, between
convolutions, so that a grouped convolution needs no copy).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

__all__ = ["DropoutFn", "PackedModel", "plan_model"]

DropoutFn = Callable[[int, torch.Tensor], torch.Tensor]
"""``(dropout layer index, slot-layout activations) -> activations with the masks applied``."""

# Element by element: the same in any layout.
_POINTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Identity,
)
# Channel by channel over (H, W): right on (N, C, H, W) whatever N and C stand for.
_SPATIAL: tuple[type[nn.Module], ...] = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)


class _Layout(enum.Enum):
    SHARED = "shared"
    SLOT = "slot"
    CHANNEL = "channel"


@dataclass(frozen=True)
class _Layer:
    kind: str  # linear, conv, pointwise, spatial, flatten, dropout
    module: nn.Module
    params: tuple[int, ...] = ()  # indices into PackedModel.shapes: weight[, bias]
    dropout: int = -1  # index among the dropout layers


class PackedModel:
    """The plan to run K copies of one model; build it with :func:`plan_model`.

    Attributes:
        names: Parameter names, as in the model's ``state_dict``.
        shapes: Parameter shapes, in the same order.
        sizes: Parameter element counts; ``sum(sizes)`` is the row length ``P``.
        signature: The structure (layers and their sizes, dropout rates left
            out): two models with equal signatures can share a pack.
        dropout_layers: How many ``Dropout`` layers the model has.
    """

    def __init__(self, layers: list[_Layer], names: list[str], shapes: list[torch.Size]):
        self._layers = layers
        self.names = names
        self.shapes = shapes
        self.sizes = [s.numel() for s in shapes]
        self.dropout_layers = sum(1 for layer in layers if layer.kind == "dropout")
        self.signature: tuple[Hashable, ...] = tuple(_describe(layer) for layer in layers)

    @property
    def row_size(self) -> int:
        """``P``: the number of parameters of one copy."""
        return sum(self.sizes)

    def flatten(self, model: nn.Module) -> torch.Tensor:
        """One copy's parameters as a flat ``[P]`` tensor, in :attr:`names` order."""
        params = dict(model.named_parameters())
        return torch.cat([params[name].detach().reshape(-1) for name in self.names])

    def dropout_rates(self, model: nn.Module) -> list[float]:
        """The rate of each ``Dropout`` layer of ``model``, in order."""
        return [float(m.p) for m in _leaves(model) if type(m) is nn.Dropout]

    def unflatten(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        """A ``[P]`` row as a ``state_dict`` (copies, detached)."""
        pieces = row.detach().split_with_sizes(self.sizes)
        return {
            name: piece.reshape(shape).clone()
            for name, piece, shape in zip(self.names, pieces, self.shapes, strict=True)
        }

    def forward(
        self, flat: torch.Tensor, x: torch.Tensor, *, shared: bool, dropout: DropoutFn | None
    ) -> torch.Tensor:
        """Run every copy.

        Args:
            flat: ``[K, P]`` parameters.
            x: ``[B, ...]`` inputs seen by every copy when ``shared``, else
                ``[K, B, ...]``, one batch per copy.
            dropout: Applies the dropout masks (training); ``None`` skips
                dropout (evaluation).

        Returns:
            ``[K, B, classes]`` logits.
        """
        k = flat.shape[0]
        pieces = flat.split_with_sizes(self.sizes, dim=1)
        params = [p.view(k, *shape) for p, shape in zip(pieces, self.shapes, strict=True)]
        layout = _Layout.SHARED if shared else _Layout.SLOT
        for layer in self._layers:
            weights = [params[i] for i in layer.params]
            if layer.kind == "linear":
                x, layout = _linear(x, layout, k, weights), _Layout.SLOT
            elif layer.kind == "conv":
                x, layout = _conv(x, layout, k, layer.module, weights), _Layout.CHANNEL
            elif layer.kind == "pointwise":
                x = layer.module(x)
            elif layer.kind == "spatial":
                x = _spatial(x, layout, layer.module)
            elif layer.kind == "flatten":
                if layout is _Layout.SHARED:
                    x = x.flatten(1)
                else:
                    x, layout = _to_slot(x, layout, k), _Layout.SLOT
                    x = x.reshape(k, x.shape[1], -1)
            elif dropout is not None:
                x, layout = dropout(layer.dropout, _to_slot(x, layout, k)), _Layout.SLOT
        return _to_slot(x, layout, k)


def plan_model(model: nn.Module) -> PackedModel | None:
    """The packing plan of ``model``, or ``None`` when it cannot be packed.

    Packable: an ``nn.Sequential`` (possibly nested) of ``Linear``, ``Conv2d``
    (zero padding), ``Dropout``, ``Flatten`` (from dimension 1) and the
    parameter-free activations and 2-D pooling layers listed in this module,
    with no buffers and no layer used twice.
    """
    if not isinstance(model, nn.Sequential) or any(True for _ in model.buffers()):
        return None
    layers: list[_Layer] = []
    names: list[str] = []
    shapes: list[torch.Size] = []
    seen: set[int] = set()
    dropouts = 0
    for name, module in _named_leaves(model, ""):
        if id(module) in seen:
            return None
        seen.add(id(module))
        kind = _kind(module)
        if kind is None:
            return None
        indices = []
        for pname, param in module.named_parameters(recurse=False):
            indices.append(len(shapes))
            names.append(f"{name}.{pname}")
            shapes.append(param.shape)
        layers.append(_Layer(kind, module, tuple(indices), dropouts if kind == "dropout" else -1))
        dropouts += kind == "dropout"
    if not shapes or len(shapes) != sum(1 for _ in model.parameters()):
        return None
    return PackedModel(layers, names, shapes)


def _kind(module: nn.Module) -> str | None:
    kind = type(module)
    if kind is nn.Linear:
        return "linear"
    if kind is nn.Conv2d:
        conv = module
        assert isinstance(conv, nn.Conv2d)
        return "conv" if conv.padding_mode == "zeros" else None
    if kind is nn.Dropout:
        return "dropout"
    if kind is nn.Flatten:
        flat = module
        assert isinstance(flat, nn.Flatten)
        return "flatten" if (flat.start_dim, flat.end_dim) == (1, -1) else None
    if kind in _POINTWISE:
        return "pointwise"
    if kind in _SPATIAL:
        return None if getattr(module, "return_indices", False) else "spatial"
    return None


def _describe(layer: _Layer) -> Hashable:
    if layer.kind == "dropout":
        return ("Dropout",)  # the rate is per slot
    module = layer.module
    shapes = tuple(tuple(p.shape) for p in module.parameters(recurse=False))
    return (type(module).__name__, module.extra_repr(), shapes)


def _named_leaves(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """Every leaf in call order; a non-leaf that is not a ``Sequential`` is its own leaf."""
    if type(module) is not nn.Sequential:
        return [(prefix, module)]
    found: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        found += _named_leaves(child, f"{prefix}.{name}" if prefix else name)
    return found


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [m for _, m in _named_leaves(model, "")]


def _to_slot(x: torch.Tensor, layout: _Layout, k: int) -> torch.Tensor:
    if layout is _Layout.SHARED:
        return x.expand(k, *x.shape)
    if layout is _Layout.CHANNEL:
        b, kc = x.shape[:2]
        return x.view(b, k, kc // k, *x.shape[2:]).transpose(0, 1)
    return x


def _linear(x: torch.Tensor, layout: _Layout, k: int, weights: list[torch.Tensor]) -> torch.Tensor:
    weight = weights[0]  # [K, out, in]
    bias = weights[1] if len(weights) > 1 else None
    out_features = weight.shape[1]
    if layout is _Layout.SHARED:
        # One product against every copy's weights side by side: [B, K * out].
        y = F.linear(
            x,
            weight.reshape(k * out_features, -1),
            None if bias is None else bias.reshape(-1),
        )
        return y.view(*y.shape[:-1], k, out_features).movedim(-2, 0)
    x = _to_slot(x, layout, k)
    rows = x.reshape(k, -1, x.shape[-1])
    if bias is None:
        y = torch.bmm(rows, weight.transpose(1, 2))
    else:
        y = torch.baddbmm(bias.unsqueeze(1), rows, weight.transpose(1, 2))
    return y.view(*x.shape[:-1], out_features)


def _conv(
    x: torch.Tensor, layout: _Layout, k: int, module: nn.Module, weights: list[torch.Tensor]
) -> torch.Tensor:
    assert isinstance(module, nn.Conv2d)
    weight = weights[0]  # [K, out, in / groups, kh, kw]
    bias = weights[1] if len(weights) > 1 else None
    flat_bias = None if bias is None else bias.reshape(-1)
    stacked = weight.reshape(-1, *weight.shape[2:])
    if layout is _Layout.SHARED and module.groups == 1:
        groups = 1  # every copy reads all channels of the one shared batch
    else:
        if layout is not _Layout.CHANNEL:
            x = _to_slot(x, layout, k)
            x = x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])
        groups = k * module.groups
    return F.conv2d(x, stacked, flat_bias, module.stride, module.padding, module.dilation, groups)


def _spatial(x: torch.Tensor, layout: _Layout, module: nn.Module) -> torch.Tensor:
    if layout is not _Layout.SLOT:
        return module(x)  # type: ignore[no-any-return]
    k, b = x.shape[:2]
    y = module(x.reshape(k * b, *x.shape[2:]))
    return y.view(k, b, *y.shape[1:])  # type: ignore[no-any-return]
