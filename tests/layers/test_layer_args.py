"""Constructor validation: bad Keras arguments raise ConfigError naming the argument and the allowed values."""

from __future__ import annotations

import pytest

from cnnexp.errors import ConfigError
from cnnexp.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPool2D, Rescaling

# (constructor call, text the message must contain)
BAD_ARGS = [
    (lambda: Conv2D(0, 3), "filters"),
    (lambda: Conv2D(2.5, 3), "filters"),
    (lambda: Conv2D(4, 0), "kernel_size"),
    (lambda: Conv2D(4, (3, 0)), "kernel_size"),
    (lambda: Conv2D(4, (3, 3, 3)), "kernel_size"),
    (lambda: Conv2D(4, 3, strides=0), "strides"),
    (lambda: Conv2D(4, 3, dilation_rate=0), "dilation_rate"),
    (lambda: Conv2D(4, 3, padding="full"), "'valid', 'same'"),
    (lambda: Conv2D(4, 3, padding=-1), "padding"),
    (lambda: Conv2D(4, 3, activation="relux"), "relu"),
    (lambda: Conv2D(4, 3, conv_impl="fast"), "'custom', 'naive', 'torch'"),
    (lambda: MaxPool2D(0), "pool_size"),
    (lambda: MaxPool2D(2, strides=0), "strides"),
    (lambda: MaxPool2D(2, padding="causal"), "padding"),
    (lambda: Dense(0), "units"),
    (lambda: Dense(True), "units"),
    (lambda: Dense(3, activation="nope"), "softmax"),
    (lambda: Dropout(1.0), "[0, 1)"),
    (lambda: Dropout(-0.1), "[0, 1)"),
    (lambda: Dropout("0.2"), "rate"),
    (lambda: Flatten("nhwc"), "channels_last"),
    (lambda: Rescaling("1/255"), "scale"),
    (lambda: Activation("sigmoidal"), "sigmoid"),
]


@pytest.mark.parametrize("make, needle", BAD_ARGS)
def test_bad_constructor_argument_raises_config_error(make, needle):
    with pytest.raises(ConfigError) as err:
        make()
    assert needle in str(err.value)


def test_keras_spellings_are_accepted():
    conv = Conv2D(4, [3, 5], strides=[2, 1], padding="SAME", dilation_rate=1, activation="ReLU")
    assert conv.kernel_size == (3, 5) and conv.strides == (2, 1)
    assert conv.padding == "same" and conv.activation == "relu"
    assert MaxPool2D(3).strides == (3, 3)  # strides default to pool_size, as in Keras
    assert Dense(None).units is None  # the output layer, sized by KerasSequential


def test_conv_impl_can_be_switched_and_is_validated():
    conv = Conv2D(4, 3)
    assert conv.conv_impl == "custom"
    conv.conv_impl = "torch"
    assert conv.conv_impl == "torch"
    with pytest.raises(ConfigError, match="conv_impl"):
        conv.conv_impl = "cudnn"
