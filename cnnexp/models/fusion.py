"""ReLU after the pool: the one rewrite KerasSequential makes of its layer list, for speed only.

ReLU is non-decreasing, so `relu(max(window)) == max(relu(window))`: a `Conv2D(activation="relu")` followed by a
`MaxPool2D` gives the same output when it runs as convolve -> pool -> ReLU, and the ReLU (forward and backward)
then touches a quarter of the elements behind a 2x2 pool. The gradient is the same too: where the window's
maximum is positive, both orders send the upstream gradient to the same first arg-max (the ReLU changes no
positive value, and every other tap is smaller or tied later); where it is <= 0, ReLU's gradient is 0 in both.
TensorFlow's graph optimiser makes the same kind of rewrite.

The pair runs one layer at a time whenever either layer has hooks (the feature-map pictures hook Conv2D
outputs, and a hook must see the layer's own output), so nothing observable changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules import module as nn_module

from cnnexp.layers import Conv2D, Layer, MaxPool2D


def pool_first(layers: Sequence[Layer], i: int) -> bool:
    """Whether layers[i], layers[i + 1] are a ReLU Conv2D and a MaxPool2D that may run as convolve, pool, ReLU."""
    if i + 1 >= len(layers):
        return False
    conv, pool = layers[i], layers[i + 1]
    return (isinstance(conv, Conv2D) and conv.activation == "relu" and isinstance(pool, MaxPool2D)
            and not hooked(conv) and not hooked(pool))


def hooked(layer: nn.Module) -> bool:
    """Any forward or backward hook on `layer`, or a global module hook."""
    return bool(layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
                or layer._backward_pre_hooks or nn_module._global_forward_hooks
                or nn_module._global_forward_pre_hooks or nn_module._global_backward_hooks
                or nn_module._global_backward_pre_hooks)


def run_layers(layers: Sequence[Layer], x: torch.Tensor) -> torch.Tensor:
    """`x` through `layers` in order, each ReLU Conv2D + MaxPool2D pair as convolve -> pool -> ReLU.

    Shape: (N, C, H, W) -> the last layer's output.
    """
    i = 0
    while i < len(layers):
        if pool_first(layers, i):
            x = torch.relu(layers[i + 1](layers[i].convolve(x)))
            i += 2
        else:
            x = layers[i](x)
            i += 1
    return x
