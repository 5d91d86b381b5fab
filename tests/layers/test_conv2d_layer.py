"""Conv2D layer: the conv_impl switch gives the same outputs and gradients; values match torch's conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnexp.functional import resolve_padding
from cnnexp.layers import Conv2D, Dense, Dropout, MaxPool2D, Rescaling

# (Conv2D kwargs, input shape (C, H, W))
LAYER_CASES = [
    (dict(filters=3, kernel_size=3, padding="same", activation="relu"), (2, 6, 6)),
    (dict(filters=2, kernel_size=(2, 4), strides=2, padding="same"), (3, 7, 6)),
    (dict(filters=4, kernel_size=3, strides=(1, 2), dilation_rate=2, use_bias=False), (1, 8, 9)),
    (dict(filters=2, kernel_size=1, padding=(1, 0), activation="tanh"), (5, 4, 4)),
]


@pytest.mark.parametrize("kwargs, in_shape", LAYER_CASES)
def test_conv_impls_agree_on_outputs_and_gradients(kwargs, in_shape):
    torch.manual_seed(0)
    conv = Conv2D(**kwargs)
    conv.build(in_shape)  # parameters exist from build on; convert them after it
    conv.double()
    conv.reset_parameters("torch")  # non-zero bias
    x = torch.randn(2, *in_shape, dtype=torch.float64)
    results = {}
    for impl in ("custom", "naive", "torch"):
        conv.conv_impl = impl
        conv.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = conv(xi)
        y.square().sum().backward()
        results[impl] = (y.detach(), xi.grad, conv.weight.grad.clone())
        assert tuple(y.shape) == (2, *conv.output_shape)
    for impl in ("custom", "naive"):
        for got, want in zip(results[impl], results["torch"]):
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("kwargs, in_shape", LAYER_CASES)
def test_conv2d_layer_matches_torch_conv_on_explicitly_padded_input(kwargs, in_shape):
    conv = Conv2D(**kwargs)
    conv.build(in_shape)
    conv.reset_parameters("torch")
    x = torch.randn(2, *in_shape)
    t, b, l, r = resolve_padding(conv.padding, in_shape[1:], conv.kernel_size, conv.strides, conv.dilation_rate)
    ref = F.conv2d(F.pad(x, (l, r, t, b)), conv.weight, conv.bias, conv.strides, 0, conv.dilation_rate)
    act = {"relu": torch.relu, "tanh": torch.tanh}.get(conv.activation, lambda v: v)
    torch.testing.assert_close(conv(x), act(ref), rtol=1e-4, atol=1e-5)


def test_dense_rescaling_dropout_pool_values():
    dense = Dense(3, activation="sigmoid")
    dense.build((4,))
    x = torch.randn(5, 4)
    torch.testing.assert_close(dense(x), torch.sigmoid(x @ dense.weight.T + dense.bias))
    torch.testing.assert_close(Rescaling(0.5, offset=-1.0)(torch.tensor([4.0])), torch.tensor([1.0]))
    drop = Dropout(0.5)
    ones = torch.ones(10000)
    y = drop.train()(ones)
    assert set(y.unique().tolist()) <= {0.0, 2.0} and 0.45 < (y == 0).float().mean() < 0.55
    assert torch.equal(drop.eval()(ones), ones) and torch.equal(Dropout(0.0).train()(ones), ones)
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(MaxPool2D()(x), F.max_pool2d(x, 2))  # 'valid' floors 5 -> 2
