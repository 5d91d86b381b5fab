"""build(input_shape) -> output shape for every layer, and the ShapeErrors for impossible inputs."""

from __future__ import annotations

import pytest
import torch

from cnnexp.errors import ShapeError
from cnnexp.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPool2D, Rescaling

# (layer factory, input shape (no batch), expected output shape, expected parameter count)
BUILD_CASES = [
    (lambda: Conv2D(16, 3, padding="same"), (3, 180, 180), (16, 180, 180), 448),
    (lambda: Conv2D(4, 3), (2, 7, 6), (4, 5, 4), 76),
    (lambda: Conv2D(4, (2, 4), strides=2, padding="same"), (3, 9, 9), (4, 5, 5), 100),
    (lambda: Conv2D(2, 3, strides=(1, 2), padding=1, use_bias=False), (1, 6, 6), (2, 6, 3), 18),
    (lambda: Conv2D(2, 3, dilation_rate=2), (1, 8, 9), (2, 4, 5), 20),
    (lambda: Conv2D(2, 5, padding="same"), (1, 3, 3), (2, 3, 3), 52),  # 'same' pads a too-small image
    (lambda: MaxPool2D(), (16, 180, 180), (16, 90, 90), 0),
    (lambda: MaxPool2D(), (64, 45, 45), (64, 22, 22), 0),  # 'valid' floors
    (lambda: MaxPool2D(2, padding="same"), (8, 45, 45), (8, 23, 23), 0),  # 'same' is ceil(45 / 2)
    (lambda: MaxPool2D(3, strides=1), (1, 5, 6), (1, 3, 4), 0),
    (lambda: Flatten(), (64, 22, 22), (30976,), 0),
    (lambda: Flatten("channels_first"), (2, 3, 4), (24,), 0),
    (lambda: Dense(128), (30976,), (128,), 3965056),
    (lambda: Dense(5, use_bias=False), (128,), (5,), 640),
    (lambda: Rescaling(1 / 255), (3, 4, 4), (3, 4, 4), 0),
    (lambda: Dropout(0.5), (10,), (10,), 0),
    (lambda: Activation("softmax"), (10,), (10,), 0),
]


@pytest.mark.parametrize("make, in_shape, out_shape, n_params", BUILD_CASES)
def test_build_returns_output_shape_that_forward_produces(make, in_shape, out_shape, n_params):
    layer = make()
    assert layer.build(in_shape) == out_shape
    assert layer.input_shape == in_shape and layer.output_shape == out_shape
    assert sum(p.numel() for p in layer.parameters()) == n_params
    y = layer.eval()(torch.randn(2, *in_shape))
    assert tuple(y.shape) == (2, *out_shape)


# (layer factory, impossible input shape, text the message must contain)
SHAPE_ERROR_CASES = [
    (lambda: Conv2D(4, 5), (3, 4, 4), "5x5"),  # kernel bigger than the input under 'valid'
    (lambda: Conv2D(4, 3, dilation_rate=3), (1, 6, 6), "extent 7x7"),
    (lambda: MaxPool2D(), (8, 1, 1), "2x2"),  # pooling below 1x1
    (lambda: Conv2D(4, 3), (8, 8), "(C, H, W)"),  # missing channel axis
    (lambda: MaxPool2D(), (16,), "(C, H, W)"),
    (lambda: Dense(3), (4, 2, 2), "Flatten"),  # Dense needs (features,)
    (lambda: Dense(None), (10,), "units=None"),
    (lambda: Flatten(), (3, 0, 4), ">= 1"),
]


@pytest.mark.parametrize("make, in_shape, needle", SHAPE_ERROR_CASES)
def test_impossible_input_raises_shape_error_naming_layer_and_shape(make, in_shape, needle):
    layer = make()
    with pytest.raises(ShapeError) as err:
        layer.build(in_shape)
    msg = str(err.value)
    assert type(layer).__name__ in msg and str(in_shape) in msg and needle in msg


def test_forward_before_build_names_the_fix():
    with pytest.raises(ShapeError, match="build"):
        Conv2D(2, 3)(torch.zeros(1, 1, 5, 5))


def test_rebuild_for_another_input_recreates_parameters():
    conv = Conv2D(4, 3)
    conv.build((1, 5, 5))
    conv.build((3, 5, 5))
    assert tuple(conv.weight.shape) == (4, 3, 3, 3)


def test_extra_repr_shows_the_keras_arguments():
    conv = Conv2D(8, 3, padding="same", activation="relu", conv_impl="naive")
    conv.build((3, 8, 8))
    text = repr(conv)
    assert "3, 8, kernel_size=(3, 3)" in text and "'same'" in text and "'relu'" in text and "'naive'" in text
    assert "in_features=30976, units=128" in repr(_built(Dense(128), (30976,)))
    assert "rate=0.2" in repr(Dropout(0.2)) and "channels_first" in repr(Flatten("channels_first"))


def _built(layer, shape):
    layer.build(shape)
    return layer
