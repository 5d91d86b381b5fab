"""DepthwiseConv2D: Keras's depthwise convolution (one set of `depth_multiplier` kernels per input channel),
channels-first, computed by cnnexp.functional.conv2d with `groups = C_in`."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnexp import functional as cf
from cnnexp.layers import activations
from cnnexp.layers.base import Layer, Shape
from cnnexp.layers.checks import IntPair, Padding, padding_arg, positive_int, positive_pair
from cnnexp.layers.init import check_init, init_kernel_and_bias_
from cnnexp.layers.window import window_output_hw


@torch.no_grad()
def depthwise_init_(weight: torch.Tensor, bias: torch.Tensor | None, c_in: int, scheme: str) -> None:
    """Fill a depthwise kernel `(C_in * m, 1, kH, kW)` and its bias.

    "keras": glorot_uniform with the fans Keras computes from its kernel `(kH, kW, C_in, m)`:
    fan_in = C_in * kH * kW, fan_out = m * kH * kW; zero bias. "torch": nn.Conv2d(groups=C_in)'s defaults.
    """
    if check_init(scheme) == "torch":
        init_kernel_and_bias_(weight, bias, "torch")
        return
    receptive = weight.shape[2] * weight.shape[3]
    m = weight.shape[0] // c_in
    limit = math.sqrt(6.0 / (c_in * receptive + m * receptive))
    weight.uniform_(-limit, limit)
    if bias is not None:
        bias.zero_()


class DepthwiseConv2D(Layer):
    """Depthwise 2-D convolution, as `keras.layers.DepthwiseConv2D` but channels-first.

    Args:
        kernel_size: int or (kH, kW).
        strides: int or (sH, sW).
        padding: "valid", "same" (Keras rule at any stride), an int or (ph, pw).
        depth_multiplier: kernels per input channel, m.
        dilation_rate: int or (dH, dW).
        activation: a name from `cnnexp.layers.activations` or None.
        use_bias: add a learned bias per output channel.

    Shape:
        input (N, C_in, H, W) -> output (N, C_in * m, H_out, W_out), output channel c * m + k from input
        channel c (Keras's order). Parameters after build: weight (C_in * m, 1, kH, kW), bias (C_in * m,).

    Example:
        >>> DepthwiseConv2D(3, padding="same", depth_multiplier=2).build((8, 16, 16))
        (16, 16, 16)
    """

    keras_name = "depthwise_conv2d"

    def __init__(
        self,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: Padding = "valid",
        depth_multiplier: int = 1,
        dilation_rate: IntPair = 1,
        activation: str | None = None,
        use_bias: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = positive_pair(type(self).__name__, "kernel_size", kernel_size)
        self.strides = positive_pair(type(self).__name__, "strides", strides)
        self.padding = padding_arg(type(self).__name__, padding)
        self.depth_multiplier = positive_int(type(self).__name__, "depth_multiplier", depth_multiplier)
        self.dilation_rate = positive_pair(type(self).__name__, "dilation_rate", dilation_rate)
        self.activation = activations.canonical_name(activation)
        self.use_bias = bool(use_bias)

    def spatial_output(self, input_shape: Shape) -> tuple[int, int]:
        """(H_out, W_out) of the depthwise step."""
        return window_output_hw(self, input_shape, self.kernel_size, self.strides, self.padding, self.dilation_rate)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0] * self.depth_multiplier, *self.spatial_output(input_shape))

    def create_parameters(self, input_shape: Shape) -> None:
        c = input_shape[0] * self.depth_multiplier
        self.weight = nn.Parameter(torch.empty(c, 1, *self.kernel_size))
        self.register_parameter("bias", nn.Parameter(torch.empty(c)) if self.use_bias else None)

    def reset_parameters(self, init: str | None = None) -> None:
        if init is not None:
            self.init = check_init(init)
        if self.built:
            depthwise_init_(self.weight, self.bias, self.input_shape[0], self.init)

    def depthwise(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The depthwise conv of x with this layer's geometry: (N, C_in, H, W) -> (N, C_in * m, H_out, W_out)."""
        return cf.conv2d(x, weight, bias, stride=self.strides, padding=self.padding, dilation=self.dilation_rate,
                         groups=x.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_in * m, H_out, W_out)."""
        self.check_built()
        return activations.get(self.activation)(self.depthwise(x, self.weight, self.bias))

    def extra_repr(self) -> str:
        c_in = self.input_shape[0] if self.input_shape else "?"
        return (f"{c_in}, kernel_size={self.kernel_size}, strides={self.strides}, padding={self.padding!r}, "
                f"depth_multiplier={self.depth_multiplier}, dilation_rate={self.dilation_rate}, "
                f"activation={self.activation!r}, use_bias={self.use_bias}")
