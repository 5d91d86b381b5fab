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
same rules (see `kernels.max_pool_forward`).

The forward and the backward are `torch.library` custom ops (`cnnexp::max_pool2d`,
`cnnexp::max_pool2d_backward`) with fake implementations, so torch.compile and torch.export treat them as
opaque nodes; backward needs x and y only (no indices), which the autograd wiring saves. Both return
dense tensors, channels_last when x is (the custom conv's outputs), else contiguous.

torch's full contract (padding, dilation, ceil_mode, return_indices): `max_pool2d` sends calls that use an argument
its Keras fast path lacks to `max_pool2d_indices`. Its forward walks the window taps in row-major order
(`window_taps` on the -inf padded plane) and keeps, per output, the running maximum and the flat input index
`h * W + w` of the tap that set it. A tap replaces the running maximum when it is larger or NaN (torch's CPU rule:
the first maximum wins a tie, NaN propagates), or when the running one still sits in the padding (so an all -inf
window points at its first real pixel, as torch's does). Backward scatter-adds the upstream gradient onto those
indices; no pooling op is called.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from . import kernels, planner
from .geometry import IntPair, Padding, WindowGeometry, op_geometry, window_geometry
from .pooling import TorchPair, pad_plane, pool_geometry, tap_rows_cols, window_taps


def _taps(xp: torch.Tensor, g: WindowGeometry) -> list[torch.Tensor]:
    """Tap `(i, j)` of every window, in row-major order; each a strided `(N, C, H_out, W_out)` view."""
    (kh, kw), (sh, sw), (ho, wo) = g.kernel, g.stride, g.out_hw
    return [xp[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw] for i in range(kh) for j in range(kw)]


def _pad_inf(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    t, b, l, r = pads
    return x if t == b == l == r == 0 else F.pad(x, (l, r, t, b), value=-math.inf)


def _empty_like_layout(x: torch.Tensor, shape) -> torch.Tensor:
    """A dense `(N, C, H', W')` tensor laid out like x: channels_last when x is channels_last-contiguous."""
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return torch.empty(tuple(shape), dtype=x.dtype, device=x.device, memory_format=fmt)


def _in_layout(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """t copied into x's layout (see `_empty_like_layout`), unless it already is dense in it."""
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return t.contiguous(memory_format=fmt)


def _taps_forward(x: torch.Tensor, geom: WindowGeometry) -> torch.Tensor:
    """The elementwise maximum of the taps (any device, dtype and layout)."""
    taps = _taps(_pad_inf(x, geom.pads), geom)
    out = _empty_like_layout(x, (*x.shape[:2], *geom.out_hw))  # (N, C, H_out, W_out)
    if len(taps) == 1:
        return out.copy_(taps[0])
    torch.maximum(taps[0], taps[1], out=out)
    for tap in taps[2:]:
        torch.maximum(out, tap, out=out)
    return out


def _taps_backward(grad_out: torch.Tensor, x: torch.Tensor, out: torch.Tensor, geom: WindowGeometry) -> torch.Tensor:
    """The upstream gradient given to the first arg-max of each window, tap by tap (any device and dtype)."""
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
    return _in_layout(gxp[:, :, t : t + h, l : l + w], x)


def _geometry(x: torch.Tensor, kernel, stride, pads) -> WindowGeometry:
    return op_geometry(x.shape[2:], kernel, stride, pads)


def _plan_key(x: torch.Tensor, geom: WindowGeometry) -> str:
    return (f"{tuple(x.shape[1:])} batch<={planner.batch_bucket(x.shape[0])} kernel={geom.kernel} "
            f"stride={geom.stride} pads={geom.pads} {x.dtype}")


def _pool_cpu(x, kernel, stride, pads) -> torch.Tensor:
    geom = _geometry(x, kernel, stride, pads)
    if not kernels.max_pool_usable(x):
        return _taps_forward(x, geom)
    return planner.run("max_pool2d.forward", _plan_key(x, geom),
                       {"kernel": lambda: kernels.max_pool_forward(x, geom),
                        "taps": lambda: _taps_forward(x, geom)}, "kernel")


def _pool_portable(x, kernel, stride, pads) -> torch.Tensor:
    return _taps_forward(x, _geometry(x, kernel, stride, pads))


max_pool2d_op = torch.library.custom_op(
    "cnnexp::max_pool2d", _pool_portable, mutates_args=(),
    schema="(Tensor x, int[] kernel, int[] stride, int[] pads) -> Tensor",
)
"""`cnnexp::max_pool2d(x, kernel, stride, pads (top, bottom, left, right))` -> y, in x's layout."""
max_pool2d_op.register_kernel("cpu")(_pool_cpu)
max_pool2d_op.register_kernel("cuda")(_pool_portable)


@max_pool2d_op.register_fake
def _pool_fake(x, kernel, stride, pads):
    return _empty_like_layout(x, (*x.shape[:2], *_geometry(x, kernel, stride, pads).out_hw))


def _pool_backward_cpu(grad_out, x, out, kernel, stride, pads) -> torch.Tensor:
    geom = _geometry(x, kernel, stride, pads)
    if not (kernels.max_pool_usable(x) and out.is_contiguous(memory_format=torch.channels_last)):
        return _taps_backward(grad_out, x, out, geom)
    return planner.run("max_pool2d.backward", _plan_key(x, geom),
                       {"kernel": lambda: kernels.max_pool_backward(x, out, grad_out, geom),
                        "taps": lambda: _taps_backward(grad_out, x, out, geom)}, "kernel")


def _pool_backward_portable(grad_out, x, out, kernel, stride, pads) -> torch.Tensor:
    return _taps_backward(grad_out, x, out, _geometry(x, kernel, stride, pads))


max_pool2d_backward_op = torch.library.custom_op(
    "cnnexp::max_pool2d_backward", _pool_backward_portable, mutates_args=(),
    schema="(Tensor grad_out, Tensor x, Tensor out, int[] kernel, int[] stride, int[] pads) -> Tensor",
)
"""dL/dx in x's layout from dL/dy, x and the forward's output y (the first arg-max of each window wins)."""
max_pool2d_backward_op.register_kernel("cpu")(_pool_backward_cpu)
max_pool2d_backward_op.register_kernel("cuda")(_pool_backward_portable)


@max_pool2d_backward_op.register_fake
def _pool_backward_fake(grad_out, x, out, kernel, stride, pads):
    return _empty_like_layout(x, x.shape)


def _setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    x, kernel, stride, pads = inputs
    ctx.save_for_backward(x, output)
    ctx.window = (list(kernel), list(stride), list(pads))


def _backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
    if not ctx.needs_input_grad[0]:
        return None, None, None, None
    x, out = ctx.saved_tensors
    return max_pool2d_backward_op(grad_out, x, out, *ctx.window), None, None, None


max_pool2d_op.register_autograd(_backward, setup_context=_setup_context)


# --- torch's full contract: the arg-max indices ----------------------------------------------------------------


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
        kernel_size, stride, padding, dilation, ceil_mode: as torch (see `pooling`); stride None means
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


# --- the entry -------------------------------------------------------------------------------------------------


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
            `max_pool2d_indices` (torch's full contract, including its padding limit).

    Shape:
        x: `(N, C, H, W)` -> `(N, C, H_out, W_out)`, `H_out = floor((H + top + bottom - kH) / sH) + 1`.
        The output is dense: channels_last when x is channels_last-contiguous, else contiguous.

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
    return max_pool2d_op(x, list(geom.kernel), list(geom.stride), list(geom.pads))
