"""Activation: a layer that applies an activation function by name, as `keras.layers.Activation`."""

from __future__ import annotations

import torch

from cnnexp.layers import activations
from cnnexp.layers.base import Layer


class Activation(Layer):
    """Apply `activations.get(name)`; no parameters.

    Args:
        name: e.g. "relu", "softmax" (over dim 1), "linear" or None.

    Shape:
        any (N, *) -> same shape.
    """

    keras_name = "activation"

    def __init__(self, name: str | None) -> None:
        super().__init__()
        self.activation = activations.canonical_name(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *) -> (N, *)."""
        return activations.get(self.activation)(x)

    def extra_repr(self) -> str:
        return f"{self.activation!r}"
