"""The layers a CNN course adds to the lecture's: shapes, Keras's parameter counts (summary rows), argument
checks, initialization, BatchNormalization's train/eval behaviour, Conv2D's padding_mode vs nn.Conv2d.
Keras parity of the weights and logits: tests/models/test_keras_weights.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnexp.errors import ConfigError, ShapeError
from cnnexp.layers import (AveragePooling2D, BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Flatten,
                           GlobalAveragePooling2D, GlobalMaxPooling2D, SeparableConv2D)
from cnnexp.models import KerasSequential
from cnnexp.models.summary import weight_counts

# (layer factory, input shape (no batch), output shape, Keras's param count: trainable + non-trainable)
BUILD_CASES = [
    (lambda: AveragePooling2D(), (16, 45, 45), (16, 22, 22), 0),
    (lambda: AveragePooling2D(3, 2, padding="same"), (8, 15, 14), (8, 8, 7), 0),
    (lambda: GlobalAveragePooling2D(), (64, 7, 7), (64,), 0),
    (lambda: GlobalMaxPooling2D(keepdims=True), (64, 7, 7), (64, 1, 1), 0),
    (lambda: BatchNormalization(), (16, 8, 8), (16, 8, 8), 64),  # gamma, beta + moving mean, variance
    (lambda: BatchNormalization(center=False), (16,), (16,), 48),
    (lambda: DepthwiseConv2D(3, depth_multiplier=2), (8, 12, 12), (16, 10, 10), 8 * 2 * 9 + 16),
    (lambda: DepthwiseConv2D((3, 1), strides=2, padding="same", use_bias=False), (4, 9, 9), (4, 5, 5), 12),
    (lambda: SeparableConv2D(32, 3, padding="same"), (16, 8, 8), (32, 8, 8), 16 * 9 + 16 * 32 + 32),
    (lambda: SeparableConv2D(5, 3, depth_multiplier=3, dilation_rate=2), (4, 9, 9), (5, 5, 5), 12 * 9 + 60 + 5),
    (lambda: Conv2D(6, 3, groups=2, padding="same"), (4, 5, 5), (6, 5, 5), 6 * 2 * 9 + 6),
]


@pytest.mark.parametrize("make, in_shape, out_shape, n_weights", BUILD_CASES)
def test_build_shape_forward_shape_and_keras_param_count(make, in_shape, out_shape, n_weights):
    layer = make()
    assert layer.build(in_shape) == out_shape
    assert sum(weight_counts(layer)) == n_weights
    y = layer.eval()(torch.randn(2, *in_shape))
    assert tuple(y.shape) == (2, *out_shape)


def test_summary_counts_moving_statistics_as_non_trainable_like_keras():
    net = KerasSequential([Conv2D(8, 3, padding="same", use_bias=False), BatchNormalization(),
                           GlobalAveragePooling2D(), Dense(None)], (3, 8, 8), 10)
    text = net.summary()
    assert "batch_normalization (BatchNormalization)" in text
    assert "Non-trainable params: 16" in text  # 2 x 8 moving statistics
    assert net.count_params() == 216 + 32 + 90 == sum(weight_counts(net))


@pytest.mark.parametrize("make, needle", [
    (lambda: BatchNormalization(momentum=1.5), "momentum"),
    (lambda: BatchNormalization(epsilon=0), "epsilon"),
    (lambda: DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
    (lambda: SeparableConv2D(0, 3), "filters"),
    (lambda: AveragePooling2D(padding="full"), "padding"),
    (lambda: Conv2D(4, 3, padding_mode="mirror"), "padding_mode"),
    (lambda: Conv2D(5, 3, groups=2), "multiple of groups"),
])
def test_bad_arguments_raise_config_errors_naming_them(make, needle):
    with pytest.raises(ConfigError) as err:
        make()
    assert needle in str(err.value)


def test_global_pooling_needs_an_image():
    with pytest.raises(ShapeError):
        GlobalAveragePooling2D().build((10,))


def test_grouped_conv2d_needs_divisible_input_channels_and_the_custom_conv():
    with pytest.raises(ShapeError, match="groups=2"):
        Conv2D(4, 3, groups=2).build((3, 5, 5))
    layer = Conv2D(4, 3, groups=2, conv_impl="torch")
    layer.build((4, 5, 5))
    with pytest.raises(ConfigError, match="conv_impl='custom'"):
        layer(torch.randn(1, 4, 5, 5))


def test_batch_normalization_uses_batch_statistics_in_training_and_moving_ones_in_eval():
    bn = BatchNormalization(momentum=0.75)
    bn.build((3, 4, 4))
    x = torch.randn(8, 3, 4, 4) * 3 + 2
    y = bn.train()(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(bn.moving_mean, 0.25 * x.mean(dim=(0, 2, 3)))  # Keras: 0.75 * 0 + 0.25 * batch
    torch.testing.assert_close(bn.moving_variance, 0.75 + 0.25 * x.var(dim=(0, 2, 3), unbiased=False))
    before = bn.moving_mean.clone()
    y_eval = bn.eval()(x)
    assert torch.equal(bn.moving_mean, before)
    expected = (x - before.view(1, 3, 1, 1)) / (bn.moving_variance.view(1, 3, 1, 1) + 1e-3).sqrt()
    torch.testing.assert_close(y_eval, expected)


@pytest.mark.parametrize("scheme", ["keras", "torch"])
def test_reset_parameters_gives_identity_batch_norm_and_bounded_kernels(scheme):
    net = KerasSequential([DepthwiseConv2D(3, depth_multiplier=2), BatchNormalization(), SeparableConv2D(4, 3),
                           Flatten(), Dense(None)], (2, 9, 9), 3, init=scheme)
    bn = net.layers[1]
    assert bn.weight.tolist() == [1.0] * 4 and bn.bias.tolist() == [0.0] * 4
    assert bn.moving_mean.tolist() == [0.0] * 4 and bn.moving_variance.tolist() == [1.0] * 4
    dw = net.layers[0].weight
    # Keras: glorot_uniform on (3, 3, C_in=2, m=2): limit sqrt(6 / (18 + 18)); torch: 1 / sqrt(fan_in = 9)
    limit = (6 / 36) ** 0.5 if scheme == "keras" else 1 / 3
    assert 0.5 * limit < dw.abs().max().item() <= limit
    sep = net.layers[2]
    assert sep.depthwise_weight.abs().max() > 0 and sep.pointwise_weight.abs().max() > 0


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding, torch_padding", [(1, 1), ("same", "same"), ((2, 1), (2, 1))])
def test_conv2d_padding_mode_matches_nn_conv2d(mode, padding, torch_padding):
    layer = Conv2D(4, 3, padding=padding, padding_mode=mode)
    layer.build((2, 7, 6))
    ref = nn.Conv2d(2, 4, 3, padding=torch_padding, padding_mode=mode)
    with torch.no_grad():
        ref.weight.copy_(layer.weight)
        ref.bias.copy_(torch.randn(4))
        layer.bias.copy_(ref.bias)
    x = torch.randn(2, 2, 7, 6)
    torch.testing.assert_close(layer(x), ref(x), atol=1e-5, rtol=1e-5)
    assert "padding_mode" in repr(layer)
