"""Flatten: (N, C, H, W) -> (N, C*H*W), in Keras's channels-last order by default."""

from __future__ import annotations

import math

import torch

from cnnexp.layers.base import Layer, Shape
from cnnexp.layers.checks import choice

DATA_FORMATS = ("channels_last", "channels_first")


class Flatten(Layer):
    """Flatten every axis but the batch axis.

    Args:
        data_format: "channels_last" (default) orders the features as Keras does on (H, W, C) data, feature
            index = (h * W + w) * C + c, so a Keras Dense kernel that follows loads unchanged;
            "channels_first" is PyTorch's x.flatten(1), index = (c * H + h) * W + w.

    Shape:
        input (N, C, *spatial) -> output (N, C * prod(spatial)).

    Example:
        >>> Flatten().build((64, 22, 22))
        (30976,)
    """

    keras_name = "flatten"

    def __init__(self, data_format: str = "channels_last") -> None:
        super().__init__()
        self.data_format = choice("Flatten", "data_format", data_format, DATA_FORMATS)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, *spatial) -> (N, features)."""
        if self.data_format == "channels_last" and x.dim() > 2:
            x = x.movedim(1, -1)  # (N, *spatial, C)
        return x.reshape(x.shape[0], -1)

    def extra_repr(self) -> str:
        return f"data_format={self.data_format!r}"
