"""Three rewrites KerasSequential makes of its layer list when it runs, for speed only.

ReLU after the pool. ReLU is non-decreasing, so `relu(max(window)) == max(relu(window))`: a
`Conv2D(activation="relu")` followed by a `MaxPool2D` gives the same output when it runs as convolve -> pool ->
ReLU, and the ReLU (forward and backward) then touches a quarter of the elements behind a 2x2 pool. The gradient
is the same too: where the window's maximum is positive, both orders send the upstream gradient to the same first
arg-max (the ReLU changes no positive value, and every other tap is smaller or tied later); where it is <= 0,
ReLU's gradient is 0 in both.

Rescaling folded into the next Conv2D. `conv(s * x, W) == conv(x, s * W)`: a `Rescaling(scale=s)` (offset 0)
right before a Conv2D scales the small weight tensor instead of the image batch (equal up to float rounding).
TensorFlow's graph optimiser makes the same kinds of rewrite.

Conv and pool as one op. Where `cnnexp.functional.conv_pool.fusable` says it pays (CPU float32 with the compiled
kernels, a custom stride-1 Conv2D, a 'valid' MaxPool2D whose windows tile the conv's output), the pair runs as
`conv2d_max_pool`, which never stores the conv's full-size output and keeps each window's arg-max for the backward;
the ReLU after the pool runs in the same op (its epilogue, and the arg-max marks what it clipped).

A layer with hooks always runs as itself (the feature-map pictures hook Conv2D outputs, and a hook must see the
layer's own output), so nothing observable changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules import module as nn_module

from cnnexp.functional.conv_pool import conv2d_max_pool, fusable
from cnnexp.layers import Conv2D, Layer, MaxPool2D, Rescaling


def hooked(layer: nn.Module) -> bool:
    """Any forward or backward hook on `layer`, or a global module hook."""
    return bool(layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
                or layer._backward_pre_hooks or nn_module._global_forward_hooks
                or nn_module._global_forward_pre_hooks or nn_module._global_backward_hooks
                or nn_module._global_backward_pre_hooks)


def _is(layers: Sequence[Layer], i: int, kind: type) -> bool:
    return i < len(layers) and isinstance(layers[i], kind) and not hooked(layers[i])


def pool_first(layers: Sequence[Layer], i: int) -> bool:
    """Whether layers[i], layers[i + 1] are a ReLU Conv2D and a MaxPool2D that may run as convolve, pool, ReLU."""
    return _is(layers, i, Conv2D) and layers[i].activation == "relu" and _is(layers, i + 1, MaxPool2D)


def scale_folds(layers: Sequence[Layer], i: int) -> bool:
    """Whether layers[i] is a Rescaling without offset that the Conv2D at i + 1 may take into its weights."""
    return _is(layers, i, Rescaling) and layers[i].offset == 0 and _is(layers, i + 1, Conv2D)


def conv_pool_fuses(conv: Conv2D, pool: MaxPool2D, x: torch.Tensor) -> bool:
    """Whether `pool(conv.convolve(x))` may run as one `conv2d_max_pool` call (see the module's docstring)."""
    return (conv.conv_impl == "custom" and conv.groups == 1 and conv.padding_mode == "zeros"
            and conv.strides == (1, 1) and fusable(x, conv.weight, pool.pool_size, pool.strides, pool.padding))


def _convolve_pool_relu(conv: Conv2D, pool: MaxPool2D, x: torch.Tensor, scale: float) -> torch.Tensor:
    """`relu(pool(conv.convolve(x, scale)))`, as one op where `conv_pool_fuses`."""
    if not conv_pool_fuses(conv, pool, x):
        return torch.relu(pool(conv.convolve(x, scale)))
    conv.check_built()
    weight = conv.weight if scale == 1.0 else conv.weight * scale
    return conv2d_max_pool(x, weight, conv.bias, conv.padding, conv.dilation_rate, pool.pool_size, relu=True)


def run_layers(layers: Sequence[Layer], x: torch.Tensor) -> torch.Tensor:
    """`x` through `layers` in order, with the two rewrites above where they apply.

    Shape: (N, C, H, W) -> the last layer's output.
    """
    layers = list(layers)  # a plain list: indexing an nn.Sequential costs a Python call or two each time
    i = 0
    while i < len(layers):
        scale = 1.0
        if scale_folds(layers, i):
            scale, i = layers[i].scale, i + 1
        if pool_first(layers, i):
            x = _convolve_pool_relu(layers[i], layers[i + 1], x, scale)
            i += 2
        elif scale != 1.0:
            x = layers[i].activate(layers[i].convolve(x, scale))
            i += 1
        else:
            x = layers[i](x)
            i += 1
    return x
