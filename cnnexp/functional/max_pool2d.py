"""Max pooling with Keras semantics and a hand-written backward.

Keras rules: the stride defaults to the pool size; 'valid' drops the rows/columns that do not fill a
whole window (floor); 'same' pads with -inf by the TensorFlow rule (odd pixel at the bottom/right),
so padding never wins a max.

Tie rule: when several values of a window equal its maximum, the *first* one in row-major window
order (top row first, then left to right) is the arg-max and receives the whole gradient; the others
get zero. This is also what PyTorch's CPU max_pool2d does.

How: a window is `kH * kW` taps; tap `(i, j)` of every window at once is the strided view
`x[:, :, i::sH, j::sW]` (no copy, any memory format). Forward takes the elementwise maximum of the
taps. Backward walks the taps in row-major order and gives the upstream gradient to the first tap
equal to the maximum, so no index tensor is stored at all: only the input and the output, which
autograd keeps alive anyway for the neighbouring ReLU and conv. The masks are float 0/1 tensors
(`sign(tap - max) + 1`): float elementwise ops vectorise, while float->bool comparisons, `where` and
`masked_fill` are several times slower on CPU. CPU float32 channels_last inputs (the custom conv's
outputs) instead run the compiled kernel `native/max_pool.cpp`, one pass over the data each way, with the
same rules (see `pool_kernel`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from . import pool_kernel
from .geometry import WindowGeometry, window_geometry
from .max_pool_indices import max_pool2d_indices, uses_torch_args
from .padding import Padding
from .types import IntPair


def _taps(xp: torch.Tensor, g: WindowGeometry) -> list[torch.Tensor]:
    """Tap `(i, j)` of every window, in row-major order; each a strided `(N, C, H_out, W_out)` view."""
    (kh, kw), (sh, sw), (ho, wo) = g.kernel, g.stride, g.out_hw
    return [xp[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw] for i in range(kh) for j in range(kw)]


def _pad_inf(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    t, b, l, r = pads
    return x if t == b == l == r == 0 else F.pad(x, (l, r, t, b), value=-math.inf)


class MaxPool2dFunction(torch.autograd.Function):
    """y = max over each window; the gradient goes to the first arg-max in row-major window order.

    On CPU float32 channels_last inputs (the custom conv's outputs) both directions run the compiled
    kernel `native/max_pool.cpp` (`pool_kernel`), which follows the same rules; elsewhere the taps below.
    """

    @staticmethod
    def forward(x: torch.Tensor, geom: WindowGeometry) -> torch.Tensor:
        if pool_kernel.usable(x):  # the same test as setup_context's
            return pool_kernel.forward(x, geom)
        taps = _taps(_pad_inf(x, geom.pads), geom)
        out = taps[0].clone() if len(taps) == 1 else torch.maximum(taps[0], taps[1])
        for tap in taps[2:]:
            out = torch.maximum(out, tap, out=out)  # (N, C, H_out, W_out)
        return out

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, geom = inputs
        ctx.save_for_backward(x, output)
        ctx.geom = geom
        ctx.kernel = pool_kernel.usable(x)  # backward takes forward's path

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        x, out = ctx.saved_tensors
        geom: WindowGeometry = ctx.geom
        if ctx.kernel:
            return pool_kernel.backward(x, out, grad_out, geom), None
        t, _, l, _ = geom.pads
        h, w = geom.in_hw
        xp = _pad_inf(x, geom.pads)  # (N, C, Hp, Wp)
        (kh, kw), (sh, sw), (ho, wo) = geom.kernel, geom.stride, geom.out_hw
        tiles = (sh, sw) == (kh, kw) and (ho * kh, wo * kw) == geom.padded_hw  # taps cover xp exactly once
        gxp = torch.empty_like(xp) if tiles else torch.zeros_like(xp)
        taps, gtaps = _taps(xp, geom), _taps(gxp, geom)
        remaining = None  # 1.0 where no earlier tap of the window was the arg-max, else 0.0
        for k, (tap, gtap) in enumerate(zip(taps, gtaps)):
            if k == len(taps) - 1 and remaining is not None:
                hit = remaining  # the maximum is somewhere: the last tap wins if no earlier one did
            else:
                hit = torch.sub(tap, out).sign_().add_(1.0)  # 1.0 where tap == max (tap - max <= 0)
                if remaining is None:
                    remaining = 1.0 - hit
                else:
                    hit.mul_(remaining)
                    remaining.sub_(hit)
            if tiles:
                torch.mul(grad_out, hit, out=gtap)
            else:
                gtap.add_(grad_out * hit)
        return gxp[:, :, t : t + h, l : l + w], None


def max_pool2d(
    x: torch.Tensor,
    kernel_size: IntPair = 2,
    stride: IntPair | None = None,
    padding: Padding = "valid",
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Max over each `kernel_size` window, Keras-style (see the module docstring for the tie rule).

    Args:
        x: input images.
        kernel_size: pool size, int or `(kH, kW)`.
        stride: step of the window; None (the default) means `kernel_size`, as in Keras.
        padding: `"valid"` (floor: incomplete windows are dropped), `"same"` (pad with -inf by the
            TensorFlow rule, output `ceil(H / stride)`), or explicit int / `(pH, pW)` -inf padding.
        dilation, ceil_mode, return_indices: torch's; when any is used, or the input is unbatched
            `(C, H, W)`, or an argument has a torch-only form (a 1-tuple, `stride=()`), the call goes to
            `max_pool_indices.max_pool2d_indices` (torch's full contract, including its padding limit).

    Shape:
        x: `(N, C, H, W)` -> `(N, C, H_out, W_out)`, `H_out = floor((H + top + bottom - kH) / sH) + 1`.
        The output keeps x's memory format (channels_last stays channels_last).

    Example:
        >>> tuple(max_pool2d(torch.randn(1, 16, 45, 45)).shape)   # 'valid' floors 45 / 2
        (1, 16, 22, 22)
    """
    if uses_torch_args(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
        return max_pool2d_indices(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    if x.dim() != 4:
        raise ValueError(f"max_pool2d: x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    stride = kernel_size if stride is None else stride
    geom = window_geometry((int(x.shape[2]), int(x.shape[3])), kernel_size, stride, padding, 1, op="max_pool2d")
    return MaxPool2dFunction.apply(x, geom)
