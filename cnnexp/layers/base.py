"""The Keras-like layer protocol: construct from Keras arguments, then `build(input_shape)`.

Shapes handed to `build` and returned by it have no batch axis and are channels-first: (C, H, W) for
images, (F,) for feature vectors. Building creates the parameters (so the input channels and the Dense
input size are inferred, as Keras does) and fills them with the layer's `init` scheme.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnexp.errors import ShapeError
from cnnexp.layers.init import check_init, init_kernel_and_bias_

Shape = tuple[int, ...]


class Layer(nn.Module):
    """Base class of cnnexp layers.

    Subclasses set `keras_name` (Keras's snake-case class name, used for summary rows and weight import)
    and override `compute_output_shape`; layers with parameters also override `create_parameters`.

    Attributes:
        name: unique Keras-style name ("conv2d", "conv2d_1", ...) given by the model, else None.
        init: "keras" or "torch", the scheme `reset_parameters` uses.
        input_shape, output_shape: set by `build`, without the batch axis.
    """

    keras_name = "layer"

    def __init__(self) -> None:
        super().__init__()
        self.name: str | None = None
        self.init = "keras"
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None

    @property
    def built(self) -> bool:
        return self.output_shape is not None

    @property
    def label(self) -> str:
        """How messages name this layer: "conv2d_1 (Conv2D)" or just "Conv2D" before naming."""
        cls = type(self).__name__
        return f"{self.name} ({cls})" if self.name else cls

    def build(self, input_shape: Sequence[int]) -> Shape:
        """Create the parameters for `input_shape` and return the output shape.

        Raises:
            ShapeError: naming the layer and the shapes when the input is impossible.
        """
        shape = tuple(int(s) for s in input_shape)
        if not shape or any(s < 1 for s in shape):
            raise self.shape_error(shape, "every dimension of the input must be >= 1")
        output_shape = self.compute_output_shape(shape)
        self.create_parameters(shape)
        self.input_shape, self.output_shape = shape, output_shape
        self.reset_parameters()
        return output_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """Output shape for `input_shape` (both without the batch axis); identity by default."""
        return input_shape

    def create_parameters(self, input_shape: Shape) -> None:
        """Create nn.Parameters for `input_shape`; layers without parameters do nothing."""

    def reset_parameters(self, init: str | None = None) -> None:
        """Re-initialize the parameters with `init` ("keras" | "torch"; default: `self.init`)."""
        if init is not None:
            self.init = check_init(init)
        weight = getattr(self, "weight", None)
        if isinstance(weight, torch.Tensor):
            init_kernel_and_bias_(weight, getattr(self, "bias", None), self.init)

    def shape_error(self, input_shape: Shape, problem: str) -> ShapeError:
        """A ShapeError naming this layer, its input shape and the problem."""
        return ShapeError(f"layer {self.label} cannot take input of shape {input_shape} (channels-first, "
                          f"no batch axis): {problem}")

    def require_rank(self, input_shape: Shape, rank: int, what: str) -> None:
        """Raise a ShapeError unless `input_shape` has `rank` dimensions (`what` describes them)."""
        if len(input_shape) != rank:
            raise self.shape_error(input_shape, f"expected {rank} dimensions {what}, got {len(input_shape)}")

    def check_built(self) -> None:
        """Raise a ShapeError when forward is called before build."""
        if not self.built:
            raise ShapeError(f"layer {self.label} is not built: call build(input_shape) first "
                             f"(KerasSequential does this for you)")
