"""KerasSequential: a Keras-style Sequential stack built from a layer list with shape inference."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral

import torch
from torch import nn

from cnnexp import functional as cf
from cnnexp.errors import ConfigError, ShapeError
from cnnexp.layers import Conv2D, Dense, Layer
from cnnexp.layers.checks import choice, positive_int
from cnnexp.layers.init import check_init
from cnnexp.models.fusion import run_layers


def _as_layer(item: object, index: int) -> Layer:
    """A layer instance, instantiating a `{_target_: ...}` mapping with Hydra if needed."""
    if isinstance(item, Mapping) or type(item).__name__ == "DictConfig":
        if "_target_" not in item:  # type: ignore[operator]
            raise ConfigError(f"layers[{index}] is a mapping without _target_: {dict(item)!r}; "  # type: ignore[arg-type]
                              f"write e.g. {{_target_: cnnexp.layers.Conv2D, filters: 16, kernel_size: 3}}")
        from hydra.utils import instantiate  # light, but only needed for un-instantiated configs

        item = instantiate(item)
    if not isinstance(item, Layer):
        raise ConfigError(f"layers[{index}] must be a cnnexp.layers layer (or its _target_ config), "
                          f"got {type(item).__name__}: {item!r}")
    return item


def _as_shape(input_shape: object) -> tuple[int, ...]:
    if input_shape is None or input_shape == "???" or isinstance(input_shape, str):
        raise ConfigError(f"KerasSequential: input_shape must be [C, H, W], got {input_shape!r}; train() fills it "
                          f"from the data module, or pass model.net.input_shape=[3,180,180]")
    try:
        shape = tuple(input_shape)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(f"KerasSequential: input_shape must be a list like [C, H, W], got {input_shape!r}") from None
    if not shape or not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in shape):
        raise ConfigError(f"KerasSequential: input_shape must be a list of integers >= 1 like [3, 180, 180], "
                          f"got {input_shape!r}")
    return tuple(int(s) for s in shape)


def assign_keras_names(layers: Iterable[Layer]) -> None:
    """Name layers as Keras does inside one model: conv2d, conv2d_1, ..., dense, dense_1, ...

    Keras 3 also keys saved weights by these names, which is what `load_keras_weights` relies on.
    """
    seen: dict[str, int] = {}
    for layer in layers:
        n = seen.get(layer.keras_name, 0)
        layer.name = layer.keras_name if n == 0 else f"{layer.keras_name}_{n}"
        seen[layer.keras_name] = n + 1


class KerasSequential(nn.Module):
    """Keras's `Sequential`: layers built in order from `input_shape`, as Keras infers shapes.

    Args:
        layers: cnnexp.layers instances (as Hydra instantiates the `_target_` list), or their configs.
            A `Dense(units=None)` becomes the output layer with `num_classes` units.
        input_shape: sample shape (C, H, W), channels-first.
        num_classes: number of output logits K.
        conv_impl: "custom" | "naive" | "torch", set on every Conv2D (settable later too).
        init: "keras" (glorot_uniform, zero bias) | "torch" (PyTorch defaults), applied to every layer.

    Shape:
        input (N, C, H, W) -> logits (N, K).

    Example:
        >>> from cnnexp.layers import Conv2D, MaxPool2D, Flatten, Dense
        >>> net = KerasSequential([Conv2D(8, 3), MaxPool2D(), Flatten(), Dense(None)], (1, 8, 8), 10)
        >>> net.count_params()  # conv 8*9+8, dense (8*3*3)*10+10
        810
    """

    def __init__(
        self,
        layers: Sequence[Layer | Mapping],
        input_shape: Sequence[int],
        num_classes: int,
        conv_impl: str = "custom",
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.input_shape = _as_shape(input_shape)
        self.num_classes = positive_int("KerasSequential", "num_classes", num_classes)
        self.init = check_init(init)
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
            raise ConfigError(f"KerasSequential: layers must be a list of layers, got {layers!r}")
        self.layers = nn.ModuleList(_as_layer(item, i) for i, item in enumerate(layers))
        if len(self.layers) == 0:
            raise ConfigError("KerasSequential: layers is empty; list at least the output Dense(units=null)")
        assign_keras_names(self.layers)
        self.conv_impl = conv_impl
        shape = self.input_shape
        for layer in self.layers:
            if isinstance(layer, Dense) and layer.units is None:
                layer.units = self.num_classes
            layer.init = self.init
            shape = layer.build(shape)
        if shape != (self.num_classes,):
            raise ShapeError(f"KerasSequential: the last layer {self.layers[-1].label} outputs {shape} but the model "
                             f"must give ({self.num_classes},) logits for num_classes={self.num_classes}; end the "
                             f"layer list with Flatten and Dense(units=null)")

    @property
    def conv_impl(self) -> str:
        """The convolution implementation of every Conv2D; assigning it switches them all."""
        return self._conv_impl

    @conv_impl.setter
    def conv_impl(self, value: str) -> None:
        self._conv_impl = choice("KerasSequential", "conv_impl", value, tuple(cf.CONV_IMPLS))
        for layer in self.layers:
            if isinstance(layer, Conv2D):
                layer.conv_impl = value

    def reset_parameters(self, init: str | None = None) -> None:
        """Re-initialize every layer with `init` (default: the model's)."""
        self.init = check_init(self.init if init is None else init)
        for layer in self.layers:
            layer.reset_parameters(self.init)

    def count_params(self) -> int:
        """Number of weights, Keras's `count_params`: parameters plus buffers (BatchNormalization's moving
        statistics, which Keras counts as non-trainable parameters)."""
        from cnnexp.models.summary import weight_counts

        return sum(weight_counts(self))

    def summary(self) -> str:
        """Keras-like table: layer name (type), output shape, parameters; then the totals."""
        from cnnexp.models.summary import summary

        return summary(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> logits (N, num_classes)."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(f"KerasSequential was built for input (N, {', '.join(map(str, self.input_shape))}) "
                             f"but got {tuple(x.shape)}; resize the data or rebuild with that input_shape")
        return run_layers(self.layers, x)  # ReLU after the pool where it changes nothing but the cost

    def extra_repr(self) -> str:
        return (f"input_shape={self.input_shape}, num_classes={self.num_classes}, conv_impl={self._conv_impl!r}, "
                f"init={self.init!r}")
