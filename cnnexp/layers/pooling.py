"""MaxPool2D: Keras's `MaxPooling2D` on channels-first tensors, computed by cnnexp.functional.max_pool2d."""

from __future__ import annotations

import torch

from cnnexp import functional as cf
from cnnexp.layers.base import Layer, Shape
from cnnexp.layers.checks import IntPair, padding_arg, positive_pair
from cnnexp.layers.window import window_output_hw


class MaxPool2D(Layer):
    """Max pooling with Keras semantics: strides default to pool_size, 'valid' floors, 'same' pads with -inf.

    Args:
        pool_size: int or (pH, pW).
        strides: int, (sH, sW) or None (= pool_size).
        padding: "valid" or "same" (also an int or a pair, as `cnnexp.functional.max_pool2d` accepts).

    Shape:
        input (N, C, H, W) -> output (N, C, H_out, W_out); 'valid': H_out = floor((H - pH) / sH) + 1,
        'same': H_out = ceil(H / sH).

    Example:
        >>> MaxPool2D().build((16, 180, 180))
        (16, 90, 90)
    """

    keras_name = "max_pooling2d"

    def __init__(self, pool_size: IntPair = 2, strides: IntPair | None = None, padding: str = "valid") -> None:
        super().__init__()
        self.pool_size = positive_pair("MaxPool2D", "pool_size", pool_size)
        self.strides = self.pool_size if strides is None else positive_pair("MaxPool2D", "strides", strides)
        self.padding = padding_arg("MaxPool2D", padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        h, w = window_output_hw(self, input_shape, self.pool_size, self.strides, self.padding)
        return (input_shape[0], h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        return cf.max_pool2d(x, self.pool_size, self.strides, self.padding)

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}"
