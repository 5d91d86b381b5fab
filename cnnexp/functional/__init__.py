"""Pure tensor functions: the custom conv2d (hand-written backward), its references, max pooling, padding.

Also from scratch with hand-written backward: torch's grouped/depthwise conv (`conv2d(..., groups=)`),
`avg_pool2d`, global pooling, `batch_norm` and nn.Conv2d's padding modes (`pad2d`).

Which module to read for what, in the order a conv call passes through them:

    conv2d.py          the public `conv2d` and the custom ops `cnnexp::conv2d*` with their hand-written backward;
                       picks a path per call (grouped / unbatched calls go to grouped_conv2d.py)
    geometry.py        argument types (`IntPair`, `pair`), padding arithmetic (Keras 'same'), window geometry and
                       its checks, the autocast operand rule
    planner.py         which implementation runs each conv direction on this machine (measured once, cached)
    grid_direct.py     stride 1, CPU float32: the compiled direct kernel on the padded grid
    grid_gemm.py       stride 1 elsewhere: blocked im2col + GEMM on the same grid
    im2col.py          channels-last window plumbing, the GEMM, and the whole-batch im2col conv (other strides)
    kernels.py         build / load / switch of the compiled kernels in native/*.cpp and their ctypes bindings

and beside them:

    reference.py       the lecture's loop `conv2d_naive` and the F.conv2d baseline `conv2d_torch`
    grouped_conv2d.py  torch's `groups` (depthwise included) and unbatched input
    max_pool2d.py      max pooling: the custom ops `cnnexp::max_pool2d*` and torch's full contract with indices
    conv_pool.py       a conv and the max pool after it as one op (`cnnexp::conv2d_max_pool`), for models.fusion
    pooling.py         the pooling window shared by max and average pooling, `avg_pool2d`, global pooling
    pad_modes.py       nn.Conv2d's "reflect" / "replicate" / "circular" padding (`pad2d`)
    batch_norm.py      `batch_norm`

Importing this package registers the custom ops `torch.ops.cnnexp.*` (conv2d, its two gradients, max_pool2d and
its gradient, conv2d_max_pool and its pool's gradient; see conv2d.py, max_pool2d.py and conv_pool.py), which
torch.compile, torch.export and the ONNX exporter see as opaque nodes.

`CONV_IMPLS` maps the `conv_impl` names used by layers and configs to the functions:
`"custom"` (the custom op with its hand-written backward), `"naive"` (the lecture's loop) and `"torch"`
(F.conv2d, the baseline). All three share one signature:
`(x, weight, bias=None, stride=1, padding="valid", dilation=1)`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .batch_norm import batch_norm
from .conv2d import conv2d
from .conv_pool import conv2d_max_pool
from .geometry import IntPair, conv_output_size, pair, resolve_padding, same_padding
from .max_pool2d import max_pool2d
from .pad_modes import PAD_MODES, pad2d
from .pooling import avg_pool2d, global_avg_pool2d, global_max_pool2d
from .reference import conv2d_naive, conv2d_torch

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
    "conv2d_max_pool",
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
