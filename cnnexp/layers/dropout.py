"""Dropout: zero each value with probability `rate` in training and scale the rest by 1 / (1 - rate)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnexp.errors import ConfigError
from cnnexp.layers.base import Layer
from cnnexp.layers.checks import number


class Dropout(Layer):
    """Inverted dropout, as `keras.layers.Dropout`; the identity in eval mode and at rate 0.

    Args:
        rate: drop probability in [0, 1).

    Shape:
        any (N, *) -> same shape.
    """

    keras_name = "dropout"

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = number("Dropout", "rate", rate)
        if not 0.0 <= self.rate < 1.0:
            raise ConfigError(f"Dropout: rate must be in [0, 1), got {rate!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *) -> (N, *)."""
        if self.rate == 0.0 or not self.training:
            return x
        return F.dropout(x, self.rate, training=True)

    def extra_repr(self) -> str:
        return f"rate={self.rate!r}"
