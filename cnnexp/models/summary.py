"""summary(model): the Keras-like model table (layer name and type, output shape, parameter count)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from cnnexp.models.sequential import KerasSequential


def weight_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable, non-trainable) weight counts as Keras counts them: parameters that require grad, then
    frozen parameters plus buffers (BatchNormalization's moving mean and variance are Keras weights too)."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return trainable, frozen + sum(b.numel() for b in module.buffers())


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else "(" + ", ".join(["None", *map(str, shape)]) + ")"


def summary(model: KerasSequential) -> str:
    """Return the model's table, one row per layer, then total / trainable / non-trainable parameters.

    Output shapes are channels-first with the batch axis as None: (None, 16, 180, 180).

    Example (the lecture model on 180x180x3, 5 classes; shortened):
        Model: "KerasSequential"  input (None, 3, 180, 180), channels-first, conv_impl=custom, init=keras
        Layer (type)                 Output Shape            Param #
        conv2d (Conv2D)              (None, 16, 180, 180)        448
        ...
        dense_1 (Dense)              (None, 5)                   645
        Total params: 3,989,285
    """
    rows = [("Layer (type)", "Output Shape", "Param #")]
    for layer in model.layers:
        n = sum(weight_counts(layer))
        rows.append((f"{layer.name} ({type(layer).__name__})", _shape(layer.output_shape), f"{n:,}"))
    w0 = max(len(r[0]) for r in rows) + 2
    w1 = max(len(r[1]) for r in rows) + 2
    w2 = max(len(r[2]) for r in rows)
    rule = "=" * (w0 + w1 + w2)
    lines = [f'Model: "{type(model).__name__}"  input {_shape(model.input_shape)}, channels-first, '
             f"conv_impl={model.conv_impl}, init={model.init}", rule]
    lines += [f"{a:<{w0}}{b:<{w1}}{c:>{w2}}" for a, b, c in rows]
    lines.insert(3, rule)  # under the header row
    trainable, frozen = weight_counts(model)
    lines += [rule, f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {frozen:,}"]
    return "\n".join(lines)
