"""Initialization schemes: 'keras' = glorot_uniform + zero bias, 'torch' = PyTorch's nn.Conv2d/nn.Linear defaults."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnexp.errors import ConfigError
from cnnexp.layers import Conv2D, Dense

# (layer factory, input shape, Keras kernel shape, fan_in, fan_out) - fans as Keras computes them
INIT_CASES = [
    (lambda: Conv2D(64, 3), (32, 9, 9), (3, 3, 32, 64), 32 * 9, 64 * 9),
    (lambda: Conv2D(48, (2, 4)), (16, 9, 9), (2, 4, 16, 48), 16 * 8, 48 * 8),
    (lambda: Dense(300), (500,), (500, 300), 500, 300),
]


def _uniform_bound_checks(w: torch.Tensor, bound: float) -> None:
    """w looks like U(-bound, bound): inside the bound, reaching near it, std bound / sqrt(3), mean ~0."""
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.97 * bound
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.03 * bound
    assert abs(w.mean().item()) < 0.02 * bound


@pytest.mark.parametrize("make, in_shape, keras_shape, fan_in, fan_out", INIT_CASES)
def test_keras_init_is_glorot_uniform_with_zero_bias(make, in_shape, keras_shape, fan_in, fan_out):
    torch.manual_seed(0)
    layer = make()
    layer.build(in_shape)  # init defaults to "keras"
    assert math.prod(keras_shape) == layer.weight.numel()
    _uniform_bound_checks(layer.weight, math.sqrt(6.0 / (fan_in + fan_out)))
    assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("make, in_shape, keras_shape, fan_in, fan_out", INIT_CASES)
def test_torch_init_matches_pytorch_defaults(make, in_shape, keras_shape, fan_in, fan_out):
    torch.manual_seed(0)
    layer = make()
    layer.build(in_shape)
    layer.reset_parameters("torch")
    assert layer.init == "torch"
    bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias rule both give this
    _uniform_bound_checks(layer.weight, bound)
    assert layer.bias.abs().max() <= bound and torch.count_nonzero(layer.bias) == layer.bias.numel()
    # the same draws as PyTorch's own module from the same seed
    torch.manual_seed(1)
    layer.reset_parameters("torch")
    torch.manual_seed(1)
    ref = nn.Conv2d(in_shape[0], layer.weight.shape[0], layer.weight.shape[2:]) if layer.weight.dim() == 4 \
        else nn.Linear(in_shape[0], layer.weight.shape[0])
    torch.testing.assert_close(layer.weight, ref.weight)
    torch.testing.assert_close(layer.bias, ref.bias)


def test_unknown_init_raises_config_error():
    conv = Conv2D(2, 3)
    conv.build((1, 4, 4))
    with pytest.raises(ConfigError, match="'keras', 'torch'"):
        conv.reset_parameters("he_normal")
