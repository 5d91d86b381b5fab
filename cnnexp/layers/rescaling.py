"""Rescaling: y = x * scale + offset (the lecture's Rescaling(1./255) maps 0..255 pixels to 0..1)."""

from __future__ import annotations

import torch

from cnnexp.layers.base import Layer
from cnnexp.layers.checks import number


class Rescaling(Layer):
    """Multiply by `scale` and add `offset`, as `keras.layers.Rescaling`; no parameters.

    Args:
        scale: multiplier, e.g. 1/255.
        offset: added after scaling.

    Shape:
        any (N, *) -> same shape.
    """

    keras_name = "rescaling"

    def __init__(self, scale: float, offset: float = 0.0) -> None:
        super().__init__()
        self.scale = number("Rescaling", "scale", scale)
        self.offset = number("Rescaling", "offset", offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *) -> (N, *)."""
        return x * self.scale + self.offset

    def extra_repr(self) -> str:
        return f"scale={self.scale!r}, offset={self.offset!r}"
