"""GlobalAveragePooling2D and GlobalMaxPooling2D: Keras's global pooling over H and W, channels-first."""

from __future__ import annotations

import torch

from cnnexp.functional.pooling import global_avg_pool2d, global_max_pool2d
from cnnexp.layers.base import Layer, Shape


class _GlobalPooling2D(Layer):
    """Pool each channel's whole plane to one value.

    Args:
        keepdims: keep the spatial axes as 1x1 (Keras's keepdims).

    Shape:
        input (N, C, H, W) -> output (N, C), or (N, C, 1, 1) with keepdims.
    """

    pool = staticmethod(global_avg_pool2d)

    def __init__(self, keepdims: bool = False) -> None:
        super().__init__()
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self.require_rank(input_shape, 3, "(C, H, W)")
        return (input_shape[0], 1, 1) if self.keepdims else (input_shape[0],)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C) or (N, C, 1, 1)."""
        return self.pool(x, self.keepdims)

    def extra_repr(self) -> str:
        return f"keepdims={self.keepdims}"


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean of each channel's plane, as `keras.layers.GlobalAveragePooling2D`.

    Example:
        >>> GlobalAveragePooling2D().build((64, 7, 7))
        (64,)
    """

    keras_name = "global_average_pooling2d"
    pool = staticmethod(global_avg_pool2d)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The max of each channel's plane, as `keras.layers.GlobalMaxPooling2D`.

    Example:
        >>> GlobalMaxPooling2D(keepdims=True).build((64, 7, 7))
        (64, 1, 1)
    """

    keras_name = "global_max_pooling2d"
    pool = staticmethod(global_max_pool2d)
