"""Conv2D: Keras's 2-D convolution layer on channels-first tensors, computed by cnnexp.functional."""

from __future__ import annotations

import torch
from torch import nn

from cnnexp import functional as cf
from cnnexp.errors import ConfigError
from cnnexp.layers import activations
from cnnexp.layers.base import Layer, Shape
from cnnexp.layers.checks import IntPair, Padding, choice, padding_arg, positive_int, positive_pair
from cnnexp.layers.window import window_output_hw


class Conv2D(Layer):
    """2-D convolution, as `keras.layers.Conv2D` but channels-first.

    Args:
        filters: number of output channels C_out (>= 1).
        kernel_size: int or (kH, kW).
        strides: int or (sH, sW).
        padding: "valid", "same" (Keras rule at any stride: output ceil(H / s)), an int or (ph, pw).
        dilation_rate: int or (dH, dW).
        activation: a name from `cnnexp.layers.activations` or None (linear).
        use_bias: add a learned bias per output channel.
        conv_impl: "custom" (hand-written backward, default), "naive" (lecture loops) or "torch" (baseline).
        groups: Keras's / torch's grouped convolution: C_in and filters split into `groups` independent
            convolutions (custom conv_impl only).
        padding_mode: what the padding holds, as nn.Conv2d: "zeros" (default, Keras), "reflect",
            "replicate" or "circular" (`cnnexp.functional.pad2d`, then a 'valid' conv).

    Shape:
        input (N, C_in, H, W) -> output (N, filters, H_out, W_out),
        H_out = floor((H + pad_top + pad_bottom - dH * (kH - 1) - 1) / sH) + 1 (W likewise).
        Parameters after build: weight (filters, C_in, kH, kW), bias (filters,).

    Example:
        >>> conv = Conv2D(16, 3, padding="same", activation="relu")
        >>> conv.build((3, 180, 180))
        (16, 180, 180)
    """

    keras_name = "conv2d"

    def __init__(
        self,
        filters: int,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: Padding = "valid",
        dilation_rate: IntPair = 1,
        activation: str | None = None,
        use_bias: bool = True,
        conv_impl: str = "custom",
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.filters = positive_int("Conv2D", "filters", filters)
        self.kernel_size = positive_pair("Conv2D", "kernel_size", kernel_size)
        self.strides = positive_pair("Conv2D", "strides", strides)
        self.padding = padding_arg("Conv2D", padding)
        self.dilation_rate = positive_pair("Conv2D", "dilation_rate", dilation_rate)
        self.activation = activations.canonical_name(activation)
        self.use_bias = bool(use_bias)
        self.conv_impl = conv_impl
        self.groups = positive_int("Conv2D", "groups", groups)
        if self.filters % self.groups:
            raise ConfigError(f"Conv2D: filters={self.filters} must be a multiple of groups={self.groups}")
        self.padding_mode = choice("Conv2D", "padding_mode", padding_mode, cf.PAD_MODES)

    @property
    def conv_impl(self) -> str:
        """Which `cnnexp.functional.CONV_IMPLS` entry computes the convolution."""
        return self._conv_impl

    @conv_impl.setter
    def conv_impl(self, value: str) -> None:
        self._conv_impl = choice("Conv2D", "conv_impl", value, tuple(cf.CONV_IMPLS))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if input_shape and input_shape[0] % self.groups:
            raise self.shape_error(input_shape,
                                   f"{input_shape[0]} input channels do not split into groups={self.groups}")
        h, w = window_output_hw(self, input_shape, self.kernel_size, self.strides, self.padding, self.dilation_rate)
        return (self.filters, h, w)

    def create_parameters(self, input_shape: Shape) -> None:
        self.weight = nn.Parameter(torch.empty(self.filters, input_shape[0] // self.groups, *self.kernel_size))
        self.register_parameter("bias", nn.Parameter(torch.empty(self.filters)) if self.use_bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, filters, H_out, W_out): the activation of `convolve(x)`."""
        return self.activate(self.convolve(x))

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        """The layer's activation function applied to `y` (any shape)."""
        return activations.get(self.activation)(y)

    def convolve(self, x: torch.Tensor, input_scale: float = 1.0) -> torch.Tensor:
        """The convolution plus bias, before the activation: (N, C_in, H, W) -> (N, filters, H_out, W_out).

        `input_scale` s gives the convolution of `s * x` as the convolution of x with s * weight (a Rescaling
        folded into the layer: the image tensor is never rescaled; every padding mode pads s * x as s times x's
        padding)."""
        self.check_built()
        conv = cf.get_conv2d(self._conv_impl)
        padding = self.padding
        if self.padding_mode != "zeros":  # pad with the mode here, then a 'valid' conv
            pads = cf.resolve_padding(padding, tuple(x.shape[-2:]), self.kernel_size, self.strides, self.dilation_rate)
            x, padding = cf.pad2d(x, pads, self.padding_mode), "valid"
        kwargs = {"stride": self.strides, "padding": padding, "dilation": self.dilation_rate}
        if self.groups != 1:
            if self._conv_impl != "custom":
                raise ConfigError(f"layer {self.label}: groups={self.groups} needs conv_impl='custom', got "
                                  f"{self._conv_impl!r}")
            kwargs["groups"] = self.groups
        weight = self.weight if input_scale == 1.0 else self.weight * input_scale
        return conv(x, weight, self.bias, **kwargs)

    def extra_repr(self) -> str:
        c_in = self.input_shape[0] if self.input_shape else "?"
        return (f"{c_in}, {self.filters}, kernel_size={self.kernel_size}, strides={self.strides}, "
                f"padding={self.padding!r}, dilation_rate={self.dilation_rate}, activation={self.activation!r}, "
                f"use_bias={self.use_bias}, conv_impl={self._conv_impl!r}"
                + (f", groups={self.groups}" if self.groups != 1 else "")
                + (f", padding_mode={self.padding_mode!r}" if self.padding_mode != "zeros" else ""))
