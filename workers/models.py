"""Small model builders for the built-in tasks, and weight initialisation."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lrsearch.search_space import WEIGHT_INITS

__all__ = ["init_weights", "make_cnn", "make_mlp"]


def make_mlp(
    in_features: int, hidden: Sequence[int], num_classes: int, *, dropout: float
) -> nn.Sequential:
    """A ReLU multilayer perceptron with dropout after every hidden layer.

    Args:
        in_features: Size of one flat input.
        hidden: Widths of the hidden layers, in order (may be empty: a linear model).
        num_classes: Number of output logits.
        dropout: Dropout probability after each hidden activation.

    Returns:
        ``Linear -> ReLU -> Dropout`` per hidden layer, then a final ``Linear``.
    """
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def make_cnn(in_channels: int, num_classes: int, *, dropout: float) -> nn.Sequential:
    """A two-convolution network for ``(N, C, H, W)`` inputs of any spatial size.

    The second convolution has stride 2 and an adaptive average pool follows,
    so images as small as 1x1 work and the head does not depend on ``H, W``.

    Args:
        in_channels: ``C`` of the inputs.
        num_classes: Number of output logits.
        dropout: Dropout probability before the classifier.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(32, num_classes),
    )


def init_weights(model: nn.Module, method: str) -> nn.Module:
    """Re-initialise every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` in place.

    Kaiming variants assume ReLU (``nonlinearity="relu"``, fan-in mode). Every
    method but ``"default"`` sets biases to zero; ``"default"`` leaves PyTorch's
    own initialisation untouched. Draws come from torch's global generator, so
    seed it first for reproducible weights.

    Args:
        model: The model to initialise.
        method: One of :data:`search_space.WEIGHT_INITS`.

    Returns:
        ``model`` itself, for chaining.

    Raises:
        ValueError: ``method`` is not a known initialisation.
    """
    if method not in WEIGHT_INITS:
        raise ValueError(f"unknown weight init {method!r}; known: {list(WEIGHT_INITS)}")
    if method == "default":
        return model
    for module in model.modules():
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        weight = module.weight
        if method == "xavier_uniform":
            nn.init.xavier_uniform_(weight)
        elif method == "xavier_normal":
            nn.init.xavier_normal_(weight)
        elif method == "kaiming_uniform":
            nn.init.kaiming_uniform_(weight, nonlinearity="relu")
        elif method == "kaiming_normal":
            nn.init.kaiming_normal_(weight, nonlinearity="relu")
        else:
            nn.init.orthogonal_(weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return model
