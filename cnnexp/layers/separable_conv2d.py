"""SeparableConv2D: Keras's depthwise-separable convolution (a depthwise conv, then a 1x1 pointwise conv),
channels-first, computed by cnnexp.functional.conv2d."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnexp import functional as cf
from cnnexp.layers import activations
from cnnexp.layers.base import Shape
from cnnexp.layers.checks import IntPair, Padding, positive_int
from cnnexp.layers.depthwise_conv2d import DepthwiseConv2D, depthwise_init_
from cnnexp.layers.init import check_init, init_kernel_and_bias_


class SeparableConv2D(DepthwiseConv2D):
    """Depthwise conv (strides, padding, dilation, `depth_multiplier` m) then a 1x1 conv to `filters` channels,
    as `keras.layers.SeparableConv2D` but channels-first. The bias and activation come after the pointwise step.

    Args:
        filters: output channels.
        kernel_size, strides, padding, depth_multiplier, dilation_rate, activation, use_bias: as DepthwiseConv2D.

    Shape:
        input (N, C_in, H, W) -> output (N, filters, H_out, W_out). Parameters after build:
        depthwise_weight (C_in * m, 1, kH, kW), pointwise_weight (filters, C_in * m, 1, 1), bias (filters,).

    Example:
        >>> SeparableConv2D(32, 3, padding="same").build((16, 8, 8))
        (32, 8, 8)
    """

    keras_name = "separable_conv2d"

    def __init__(
        self,
        filters: int,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: Padding = "valid",
        depth_multiplier: int = 1,
        dilation_rate: IntPair = 1,
        activation: str | None = None,
        use_bias: bool = True,
    ) -> None:
        super().__init__(kernel_size, strides, padding, depth_multiplier, dilation_rate, activation, use_bias)
        self.filters = positive_int("SeparableConv2D", "filters", filters)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (self.filters, *self.spatial_output(input_shape))

    def create_parameters(self, input_shape: Shape) -> None:
        mid = input_shape[0] * self.depth_multiplier
        self.depthwise_weight = nn.Parameter(torch.empty(mid, 1, *self.kernel_size))
        self.pointwise_weight = nn.Parameter(torch.empty(self.filters, mid, 1, 1))
        self.register_parameter("bias", nn.Parameter(torch.empty(self.filters)) if self.use_bias else None)

    @torch.no_grad()
    def reset_parameters(self, init: str | None = None) -> None:
        """"keras": glorot_uniform for both kernels (Keras's fans), zero bias; "torch": nn.Conv2d's defaults."""
        if init is not None:
            self.init = check_init(init)
        if not self.built:
            return
        depthwise_init_(self.depthwise_weight, None, self.input_shape[0], self.init)
        if self.init == "torch":
            init_kernel_and_bias_(self.pointwise_weight, self.bias, "torch")
        else:
            fan_in, fan_out = self.pointwise_weight.shape[1], self.filters
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            self.pointwise_weight.uniform_(-limit, limit)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, filters, H_out, W_out)."""
        self.check_built()
        y = self.depthwise(x, self.depthwise_weight, None)  # (N, C_in * m, H_out, W_out)
        return activations.get(self.activation)(cf.conv2d(y, self.pointwise_weight, self.bias))

    def extra_repr(self) -> str:
        return f"filters={self.filters}, " + super().extra_repr()
