"""Max pooling with torch's full contract (padding, dilation, ceil_mode, return_indices), hand-written backward.

`max_pool2d` (max_pool2d.py) sends calls here when they use an argument its Keras fast path lacks.

Forward walks the window taps in row-major order (`window_taps` on the -inf padded plane) and keeps, per
output, the running maximum and the flat input index `h * W + w` of the tap that set it. A tap replaces the
running maximum when it is larger or NaN (torch's CPU rule: the first maximum wins a tie, NaN propagates),
or when the running one still sits in the padding (so an all -inf window points at its first real pixel,
as torch's does). Backward scatter-adds the upstream gradient onto those indices; no pooling op is called.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .geometry import WindowGeometry
from .pool_window import TorchPair, pad_plane, pool_geometry, tap_rows_cols, window_taps


def _max_with_indices(x: torch.Tensor, g: WindowGeometry) -> tuple[torch.Tensor, torch.Tensor]:
    """x `(B, H, W)` -> (max `(B, H_out, W_out)`, flat indices `(B, H_out, W_out)` int64)."""
    h, w = g.in_hw
    taps = window_taps(pad_plane(x, g.pads, -math.inf), g)
    best = idx = valid = None
    for tap, (r, c) in zip(taps, tap_rows_cols(g, x.device)):
        inside = ((r >= 0) & (r < h))[:, None] & ((c >= 0) & (c < w))[None, :]  # (H_out, W_out)
        flat = r.clamp(0, h - 1)[:, None] * w + c.clamp(0, w - 1)[None, :]  # (H_out, W_out)
        if best is None:
            best, idx, valid = tap.clone(), flat.expand(tap.shape).clone(), inside
            continue
        take = (tap > best) | torch.isnan(tap) | (inside & ~valid)  # (B, H_out, W_out)
        best = torch.where(take, tap, best)
        idx = torch.where(take, flat, idx)
        valid = valid | inside
    return best, idx


class MaxPool2dIndicesFunction(torch.autograd.Function):
    """(y, indices) = max pooling of `(B, H, W)` planes; the gradient goes to the arg-max indices."""

    @staticmethod
    def forward(x: torch.Tensor, geom: WindowGeometry) -> tuple[torch.Tensor, torch.Tensor]:
        return _max_with_indices(x, geom)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, geom = inputs
        _, idx = output
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(idx)
        ctx.in_shape = x.shape

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_idx: Any = None) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (idx,) = ctx.saved_tensors
        b, h, w = ctx.in_shape
        gx = grad_out.new_zeros((b, h * w)).scatter_add_(1, idx.reshape(b, -1), grad_out.reshape(b, -1))
        return gx.view(b, h, w), None


def _two_ints(v: object) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, (tuple, list)) and len(v) == 2)


def uses_torch_args(x: torch.Tensor, kernel_size: object, stride: object, padding: object, dilation: object,
                    ceil_mode: bool, return_indices: bool) -> bool:
    """True when a `max_pool2d` call needs torch's contract rather than the Keras fast path: unbatched input,
    dilation, ceil_mode, return_indices, or a torch-only argument form (a 1-tuple, `stride=()`)."""
    return (x.dim() != 4 or bool(ceil_mode) or bool(return_indices) or dilation not in (1, (1, 1), [1, 1])
            or not _two_ints(kernel_size) or not (stride is None or _two_ints(stride))
            or not (isinstance(padding, str) or _two_ints(padding)))


def max_pool2d_indices(
    x: torch.Tensor,
    kernel_size: TorchPair,
    stride: TorchPair | None = None,
    padding: str | TorchPair = 0,
    dilation: TorchPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`torch.nn.functional.max_pool2d` from scratch (also Keras's "same"/"valid" padding).

    Args:
        x: `(N, C, H, W)` or unbatched `(C, H, W)`.
        kernel_size, stride, padding, dilation, ceil_mode: as torch (see `pool_window`); stride None means
            kernel_size; padding may be "same" (-inf, TensorFlow rule) or "valid".
        return_indices: also return the arg-max of each window as a flat index `h * W + w` into its plane.

    Shape:
        Output `(N, C, H_out, W_out)` (or `(C, H_out, W_out)`), indices the same shape, int64.
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"max_pool2d: x must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    geom, _ = pool_geometry((h, w), kernel_size, stride, padding, dilation, ceil_mode, op="max_pool2d")
    lead = x.shape[:-2]
    y, idx = MaxPool2dIndicesFunction.apply(x.reshape(-1, h, w), geom)
    y, idx = y.view(*lead, *geom.out_hw), idx.view(*lead, *geom.out_hw)
    return (y, idx) if return_indices else y
