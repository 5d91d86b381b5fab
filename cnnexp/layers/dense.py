"""Dense: Keras's fully connected layer, y = activation(x W^T + b)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnexp.layers import activations
from cnnexp.layers.base import Layer, Shape
from cnnexp.layers.checks import positive_int


class Dense(Layer):
    """Fully connected layer, as `keras.layers.Dense` on (N, features) input.

    Args:
        units: output features; None marks the model's output layer, whose size KerasSequential sets to
            num_classes (so the class count is written in one place: the data).
        activation: a name from `cnnexp.layers.activations` or None (linear, i.e. logits).
        use_bias: add a learned bias.

    Shape:
        input (N, in_features) -> output (N, units). Parameters after build: weight (units, in_features)
        (Keras's kernel transposed), bias (units,).

    Example:
        >>> Dense(128, activation="relu").build((30976,))
        (128,)
    """

    keras_name = "dense"

    def __init__(self, units: int | None, activation: str | None = None, use_bias: bool = True) -> None:
        super().__init__()
        self.units = None if units is None else positive_int("Dense", "units", units)
        self.activation = activations.canonical_name(activation)
        self.use_bias = bool(use_bias)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if self.units is None:
            raise self.shape_error(input_shape, "units=None marks the output layer, whose size only "
                                   "KerasSequential sets (to num_classes); give units an integer to build it alone")
        self.require_rank(input_shape, 1, "(features,); put a Flatten before Dense")
        return (self.units,)

    def create_parameters(self, input_shape: Shape) -> None:
        self.weight = nn.Parameter(torch.empty(self.units, input_shape[0]))
        self.register_parameter("bias", nn.Parameter(torch.empty(self.units)) if self.use_bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_features) -> (N, units)."""
        self.check_built()
        return activations.get(self.activation)(F.linear(x, self.weight, self.bias))

    def extra_repr(self) -> str:
        in_features = self.input_shape[0] if self.input_shape else "?"
        return (f"in_features={in_features}, units={self.units}, activation={self.activation!r}, "
                f"use_bias={self.use_bias}")
