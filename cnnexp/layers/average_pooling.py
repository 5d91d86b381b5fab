"""AveragePooling2D: Keras's average pooling on channels-first tensors, computed by cnnexp.functional.pooling.avg_pool2d."""

from __future__ import annotations

import torch

from cnnexp.functional.pooling import avg_pool2d
from cnnexp.layers.base import Layer, Shape
from cnnexp.layers.checks import IntPair, padding_arg, positive_pair
from cnnexp.layers.window import window_output_hw


class AveragePooling2D(Layer):
    """Average pooling with Keras semantics: strides default to pool_size, 'valid' floors, 'same' pads by the
    TensorFlow rule and leaves the padding out of each mean.

    Args:
        pool_size: int or (pH, pW).
        strides: int, (sH, sW) or None (= pool_size).
        padding: "valid" or "same" (also an int or a pair: torch's zero padding, counted in the mean).

    Shape:
        input (N, C, H, W) -> output (N, C, H_out, W_out); 'valid': H_out = floor((H - pH) / sH) + 1,
        'same': H_out = ceil(H / sH).

    Example:
        >>> AveragePooling2D(3, 2, padding="same").build((8, 15, 15))
        (8, 8, 8)
    """

    keras_name = "average_pooling2d"

    def __init__(self, pool_size: IntPair = 2, strides: IntPair | None = None, padding: str = "valid") -> None:
        super().__init__()
        self.pool_size = positive_pair("AveragePooling2D", "pool_size", pool_size)
        self.strides = self.pool_size if strides is None else positive_pair("AveragePooling2D", "strides", strides)
        self.padding = padding_arg("AveragePooling2D", padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        h, w = window_output_hw(self, input_shape, self.pool_size, self.strides, self.padding)
        return (input_shape[0], h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        return avg_pool2d(x, self.pool_size, self.strides, self.padding)

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}"
