"""Pure tensor functions: the custom conv2d (hand-written backward), its references, max pooling, padding.

Also from scratch with hand-written backward: torch's grouped/depthwise conv (`conv2d(..., groups=)`),
`avg_pool2d`, global pooling, `batch_norm` and nn.Conv2d's padding modes (`pad2d`).

Importing this package registers the custom ops `torch.ops.cnnexp.*` (conv2d, its two gradients, max_pool2d and
its gradient; see conv2d.py and max_pool2d.py), which torch.compile, torch.export and the ONNX exporter see as
opaque nodes.

`CONV_IMPLS` maps the `conv_impl` names used by layers and configs to the functions:
`"custom"` (the custom op with its hand-written backward), `"naive"` (the lecture's loop) and `"torch"`
(F.conv2d, the baseline). All three share one signature:
`(x, weight, bias=None, stride=1, padding="valid", dilation=1)`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .avg_pool2d import avg_pool2d
from .batch_norm import batch_norm
from .conv2d import conv2d
from .conv2d_naive import conv2d_naive
from .conv2d_torch import conv2d_torch
from .global_pool import global_avg_pool2d, global_max_pool2d
from .max_pool2d import max_pool2d
from .pad_modes import PAD_MODES, pad2d
from .padding import conv_output_size, resolve_padding, same_padding
from .types import IntPair, pair

ConvFn = Callable[..., torch.Tensor]

CONV_IMPLS: dict[str, ConvFn] = {"custom": conv2d, "naive": conv2d_naive, "torch": conv2d_torch}


def get_conv2d(impl: str) -> ConvFn:
    """Return the conv function named `impl` (a key of `CONV_IMPLS`).

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    try:
        return CONV_IMPLS[impl]
    except (KeyError, TypeError):
        raise ValueError(f"unknown conv_impl {impl!r}; choose one of {sorted(CONV_IMPLS)}") from None


__all__ = [
    "CONV_IMPLS",
    "IntPair",
    "PAD_MODES",
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "conv2d_naive",
    "conv2d_torch",
    "conv_output_size",
    "get_conv2d",
    "global_avg_pool2d",
    "global_max_pool2d",
    "max_pool2d",
    "pad2d",
    "pair",
    "resolve_padding",
    "same_padding",
]
