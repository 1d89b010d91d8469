"""Weight initialisation statistics and dropout behaviour of the model builders."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrsearch.search_space import WEIGHT_INITS
from lrsearch.workers.models import init_weights, make_cnn, make_mlp
from lrsearch.workers.tasks import SyntheticTask

FAN_IN, FAN_OUT = 512, 256  # a rectangular layer tells fan-in from fan-out


def _layer(method: str) -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(FAN_IN, FAN_OUT)
    init_weights(nn.Sequential(layer), method)
    return layer


def _std(layer: nn.Linear | nn.Conv2d) -> float:
    return float(layer.weight.detach().std())


def test_xavier_uniform_fills_its_bound() -> None:
    layer = _layer("xavier_uniform")
    bound = math.sqrt(6 / (FAN_IN + FAN_OUT))
    weight = layer.weight.detach()
    assert float(weight.abs().max()) <= bound
    assert float(weight.abs().max()) > 0.99 * bound
    assert _std(layer) == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_xavier_normal_has_its_std() -> None:
    assert _std(_layer("xavier_normal")) == pytest.approx(
        math.sqrt(2 / (FAN_IN + FAN_OUT)), rel=0.1
    )


@pytest.mark.parametrize("method", ["kaiming_uniform", "kaiming_normal"])
def test_kaiming_has_relu_fan_in_std(method: str) -> None:
    assert _std(_layer(method)) == pytest.approx(math.sqrt(2 / FAN_IN), rel=0.1)


def test_kaiming_uniform_stays_inside_its_bound() -> None:
    bound = math.sqrt(6 / FAN_IN)
    assert float(_layer("kaiming_uniform").weight.detach().abs().max()) <= bound


def test_orthogonal_rows_are_orthonormal() -> None:
    weight = _layer("orthogonal").weight.detach()  # (256, 512): wide, so rows are orthonormal
    gram = weight @ weight.T
    assert torch.allclose(gram, torch.eye(FAN_OUT), atol=1e-4)


@pytest.mark.parametrize("method", [m for m in WEIGHT_INITS if m != "default"])
def test_non_default_inits_zero_every_bias_of_linear_and_conv_layers(method: str) -> None:
    torch.manual_seed(0)
    model = init_weights(make_cnn(3, 5, dropout=0.0), method)
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    assert len(layers) == 3
    for layer in layers:
        assert layer.bias is not None
        assert torch.count_nonzero(layer.bias) == 0


def test_kaiming_normal_on_a_conv_uses_the_kernel_fan_in() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 64, kernel_size=3)
    init_weights(conv, "kaiming_normal")
    assert _std(conv) == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.1)


def test_default_leaves_torch_own_init_untouched() -> None:
    torch.manual_seed(7)
    fresh = make_mlp(20, [32], 4, dropout=0.0)
    torch.manual_seed(7)
    initialised = init_weights(make_mlp(20, [32], 4, dropout=0.0), "default")
    for a, b in zip(fresh.state_dict().values(), initialised.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_unknown_init_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown weight init 'lecun'"):
        init_weights(nn.Linear(2, 2), "lecun")


def test_dropout_acts_in_train_mode_only(synthetic: SyntheticTask) -> None:
    torch.manual_seed(0)
    model = synthetic.build_model(dropout=0.5, weight_init="default")
    x = synthetic.load_data(0).x_val[:64]
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)
    # In eval mode the model is the same function as one built without dropout.
    torch.manual_seed(0)
    plain = synthetic.build_model(dropout=0.0, weight_init="default").eval()
    with torch.no_grad():
        assert torch.allclose(first, plain(x))


def test_cnn_accepts_images_down_to_one_pixel() -> None:
    model = make_cnn(1, 3, dropout=0.0)
    for size in (1, 2, 7, 28):
        assert model(torch.zeros(2, 1, size, size)).shape == (2, 3)
