"""Max pooling with Keras semantics and a hand-written backward.

Keras rules: the stride defaults to the pool size; 'valid' drops the rows/columns that do not fill a
whole window (floor); 'same' pads with -inf by the TensorFlow rule (odd pixel at the bottom/right),
so padding never wins a max.

Tie rule: when several values of a window equal its maximum, the *first* one in row-major window
order (top row first, then left to right) is the arg-max and receives the whole gradient; the others
get zero. This is also what PyTorch's CPU max_pool2d does.

Two paths share the rule:
- non-overlapping windows (stride == pool size, the common case): the input is only *reshaped* into
  `(N, C, H_out, kH, W_out, kW)` (a view in any memory format) and reduced, no window copy;
- any other stride: windows are gathered from a -inf padded NHWC copy, like im2col for conv2d.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .geometry import WindowGeometry, window_geometry
from .im2col import col2im_add_, nchw_view, nhwc_view, pad_nhwc, patches
from .padding import Padding
from .types import IntPair


def _blocks(x: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """View `(N, C, >=H_out*kH, >=W_out*kW)` as non-overlapping blocks `(N, C, H_out, kH, W_out, kW)`."""
    (kh, kw), (ho, wo) = g.kernel, g.out_hw
    return x[:, :, : ho * kh, : wo * kw].unflatten(3, (wo, kw)).unflatten(2, (ho, kh))


def _pad_inf(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    t, b, l, r = pads
    return x if t == b == l == r == 0 else F.pad(x, (l, r, t, b), value=-math.inf)


class MaxPool2dFunction(torch.autograd.Function):
    """(values, argmax) = max_pool2d(x); argmax is the window index `row * kW + col` of the winner."""

    @staticmethod
    def forward(x: torch.Tensor, geom: WindowGeometry) -> tuple[torch.Tensor, torch.Tensor]:
        kh, kw = geom.kernel
        if geom.stride == geom.kernel:
            xb = _blocks(_pad_inf(x, geom.pads), geom)  # (N, C, H_out, kH, W_out, kW), a view
            v_row, i_col = xb.max(dim=5)  # (N, C, H_out, kH, W_out): best column of each window row
            values, i_row = v_row.max(dim=3)  # (N, C, H_out, W_out): best row (first on ties)
            argmax = i_row * kw + i_col.gather(3, i_row.unsqueeze(3)).squeeze(3)
        else:
            xp = pad_nhwc(x, geom.pads, fill=-math.inf)  # (N, Hp, Wp, C)
            win = patches(xp, geom).permute(0, 1, 2, 5, 3, 4).flatten(4)  # (N, H_out, W_out, C, kH*kW)
            values, argmax = win.max(dim=4)  # first maximum on ties
            values, argmax = nchw_view(values), nchw_view(argmax)  # (N, C, H_out, W_out)
        small = torch.uint8 if kh * kw <= 256 else torch.int64
        return values, argmax.to(small)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, geom = inputs
        _, argmax = output
        ctx.mark_non_differentiable(argmax)
        ctx.save_for_backward(argmax)
        ctx.geom = geom
        ctx.x_meta = (x.shape, x.dtype, x.device, x.is_contiguous(memory_format=torch.channels_last))

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_argmax: Any = None) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (argmax,) = ctx.saved_tensors
        geom: WindowGeometry = ctx.geom
        shape, dtype, device, channels_last = ctx.x_meta
        (kh, kw), (t, b, l, r) = geom.kernel, geom.pads
        n, c, h, w = shape
        hp, wp = geom.padded_hw
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if geom.stride == geom.kernel:
            ho, wo = geom.out_hw
            covered = ho * kh == hp and wo * kw == wp
            gxp = torch.empty((n, c, hp, wp), dtype=dtype, device=device, memory_format=fmt)
            if not covered:
                gxp.zero_()
            tap = torch.arange(kh * kw, device=device, dtype=argmax.dtype).view(kh, 1, kw)  # (kH, 1, kW)
            hit = argmax.unsqueeze(3).unsqueeze(5) == tap  # (N, C, H_out, kH, W_out, kW)
            torch.mul(hit, grad_out.unsqueeze(3).unsqueeze(5), out=_blocks(gxp, geom))
        else:
            cols = grad_out.new_zeros((*argmax.shape, kh * kw))  # (N, C, H_out, W_out, kH*kW)
            cols.scatter_(4, argmax.long().unsqueeze(4), grad_out.unsqueeze(4))
            cols = cols.permute(0, 2, 3, 4, 1).reshape(-1, kh * kw * c)  # (N*H_out*W_out, kH*kW*C)
            gxp_nhwc = col2im_add_(grad_out.new_zeros((n, hp, wp, c)), cols, geom)
            gxp = nchw_view(gxp_nhwc)
        return gxp[:, :, t : t + h, l : l + w], None


def max_pool2d(
    x: torch.Tensor, kernel_size: IntPair = 2, stride: IntPair | None = None, padding: Padding = "valid"
) -> torch.Tensor:
    """Max over each `kernel_size` window, Keras-style (see the module docstring for the tie rule).

    Args:
        x: input images.
        kernel_size: pool size, int or `(kH, kW)`.
        stride: step of the window; None (the default) means `kernel_size`, as in Keras.
        padding: `"valid"` (floor: incomplete windows are dropped), `"same"` (pad with -inf by the
            TensorFlow rule, output `ceil(H / stride)`), or explicit int / `(pH, pW)` -inf padding.

    Shape:
        x: `(N, C, H, W)` -> `(N, C, H_out, W_out)`, `H_out = floor((H + top + bottom - kH) / sH) + 1`.

    Example:
        >>> tuple(max_pool2d(torch.randn(1, 16, 45, 45)).shape)   # 'valid' floors 45 / 2
        (1, 16, 22, 22)
    """
    if x.dim() != 4:
        raise ValueError(f"max_pool2d: x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    stride = kernel_size if stride is None else stride
    geom = window_geometry((int(x.shape[2]), int(x.shape[3])), kernel_size, stride, padding, 1, op="max_pool2d")
    values, _ = MaxPool2dFunction.apply(x, geom)
    return values
