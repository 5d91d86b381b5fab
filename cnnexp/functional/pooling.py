"""Pooling: the window shared by max and average pooling, average pooling, and global pooling, each with a
hand-written backward.

The pooling window: torch's arguments and Keras's 'same'/'valid'. PyTorch's rule for one axis (input length `H`,
kernel `k`, stride `s`, padding `p`, dilation `d`):

    e     = (k - 1) * d + 1                                   # extent of the dilated window
    H_out = floor_or_ceil((H + 2p - e) / s) + 1               # ceil when ceil_mode
    if ceil_mode and (H_out - 1) * s >= H + p: H_out -= 1     # the last window must start inside input or left pad

with `p <= k / 2`. A ceil_mode window may run past the bottom/right padding; those positions are read as
the padding value (-inf for max, 0 for average) and, as in torch, never counted by `count_include_pad`.
Keras's `"same"` (TensorFlow rule, odd pixel at the bottom/right) and `"valid"` come from `resolve_padding`.
`pool_geometry` turns either form into a `WindowGeometry` whose pads cover every window (so a tap is a plain
strided view of the padded plane), plus the nominal pads that `count_include_pad` counts.
`window_taps` returns those views: tap `(i, j)` of every window at once, in row-major window order.

Average pooling (`avg_pool2d`), with torch's contract (padding, ceil_mode, count_include_pad, divisor_override)
and Keras's "same" / "valid". Forward sums the window taps of the zero-padded plane (`window_taps`) and divides
each output by its divisor; backward hands `grad / divisor` back to every tap's pixels (the adjoint of the
strided views). Divisor of the window starting at row `r0` (torch's CPU kernel; columns alike, the divisor is
the product):

    include = min(r0 + kH, H + pad_bottom) - r0          # window rows inside input + nominal padding
    exclude = min(r0 + kH, H) - max(r0, 0)               # window rows inside the input
    divisor = divisor_override or (include if count_include_pad else exclude)

Keras's "same" always excludes its padding (TensorFlow's average pooling), whatever count_include_pad says.
A window with no input pixel (possible with ceil_mode) outputs 0.

Global average and max pooling over the spatial axes (Keras's GlobalAveragePooling2D / GlobalMaxPooling2D on
channels-first tensors):

    global_avg_pool2d: y[n, c] = mean over (h, w) of x[n, c]      backward: dx = g / (H * W) on every pixel
    global_max_pool2d: y[n, c] = max over (h, w) of x[n, c]       backward: dx = g at the first arg-max
                                                                  (row-major; NaN wins, as torch's max)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ShapeError
from .geometry import WindowGeometry, effective_kernel, resolve_padding

# --- the pooling window -----------------------------------------------------------------------------------------

TorchPair = int | Sequence[int]
"""torch's `_pair` arguments: an int, or a sequence of one (both axes) or two `(h, w)` ints."""


def torch_pair(value: TorchPair | None, name: str, default: tuple[int, int] | None = None) -> tuple[int, int]:
    """Normalise an int, a 1- or 2-sequence, or (when `default` is given) None / `()` to `(h, w)`.

    Raises:
        ValueError: anything else, naming the argument.

    Example:
        >>> torch_pair(3, "k"), torch_pair((2,), "p"), torch_pair((), "stride", (3, 3))
        ((3, 3), (2, 2), (3, 3))
    """
    if default is not None and (value is None or (isinstance(value, (tuple, list)) and len(value) == 0)):
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) in (1, 2) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return (int(value[0]), int(value[-1]))
    raise ValueError(f"{name} must be an int or a pair of ints (h, w), got {value!r}")


def _torch_axis(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's `pooling_output_shape` for one axis."""
    num = size + 2 * p - effective_kernel(k, d) + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def pool_geometry(
    in_hw: tuple[int, int],
    kernel_size: TorchPair,
    stride: TorchPair | None = None,
    padding: str | TorchPair = 0,
    dilation: TorchPair = 1,
    ceil_mode: bool = False,
    op: str = "pool2d",
) -> tuple[WindowGeometry, tuple[int, int, int, int]]:
    """Validate pooling arguments and place the windows.

    Args:
        in_hw: input `(H, W)`.
        kernel_size, stride, padding, dilation: torch's forms (stride None or `()` means kernel_size);
            padding may also be Keras's `"valid"` or `"same"`.
        ceil_mode: torch's ceil rule for the output size (numeric padding only).

    Returns:
        `(geom, nominal_pads)`: `geom.pads` cover every window (ceil_mode may add rows/columns past the
        nominal bottom/right padding); `nominal_pads` are the `(top, bottom, left, right)` padding proper.

    Raises:
        ValueError: kernel, stride or dilation below 1, negative padding or padding above half the kernel.
        ShapeError (a ValueError): no window fits (output below 1x1).
    """
    k = torch_pair(kernel_size, "kernel_size")
    s = torch_pair(stride, "stride", default=k)
    d = torch_pair(dilation, "dilation")
    for name, v in (("kernel_size", k), ("stride", s), ("dilation", d)):
        if min(v) < 1:
            raise ValueError(f"{op}: {name} must be >= 1 on both axes, got {v}")
    if isinstance(padding, str) and padding.lower() == "valid":
        padding = 0  # no padding; so ceil_mode applies as with torch's default padding=0
    if isinstance(padding, str):
        if ceil_mode:
            raise ValueError(f"{op}: ceil_mode applies to numeric padding, not {padding!r}; pass one of them")
        nominal = resolve_padding(padding, in_hw, k, s, d)
        out = tuple((size + a + b - effective_kernel(kk, dd)) // ss + 1
                    for size, a, b, kk, ss, dd in zip(in_hw, nominal[::2], nominal[1::2], k, s, d))
    else:
        p = torch_pair(padding, "padding")
        if min(p) < 0 or p[0] > k[0] // 2 or p[1] > k[1] // 2:
            raise ValueError(f"{op}: padding {p} must be >= 0 and at most half the kernel_size {k} (torch's rule)")
        nominal = (p[0], p[0], p[1], p[1])
        out = tuple(_torch_axis(*a, ceil_mode) for a in zip(in_hw, k, s, p, d))
    if min(out) < 1:
        raise ShapeError(f"{op}: the {k[0]}x{k[1]} window (stride {s}, dilation {d}, padding {padding!r}) does not "
                         f"fit in the {in_hw[0]}x{in_hw[1]} input (output would be {out[0]}x{out[1]}); use a "
                         f"smaller window, padding or a larger input")
    # pads that cover every window: the last window ends at (out - 1) * s + e - before
    after = tuple(max((o - 1) * ss + effective_kernel(kk, dd) - size - before, 0)
                  for o, ss, kk, dd, size, before in zip(out, s, k, d, in_hw, nominal[::2]))
    pads = (nominal[0], after[0], nominal[2], after[1])
    geom = WindowGeometry(k, s, d, pads, (int(in_hw[0]), int(in_hw[1])), (int(out[0]), int(out[1])))
    return geom, nominal


def pad_plane(x: torch.Tensor, pads: tuple[int, int, int, int], fill: float) -> torch.Tensor:
    """Copy `x` into a `fill`-bordered buffer (x itself when no padding).

    Shape:
        x: `(..., H, W)` -> `(..., H + top + bottom, W + left + right)`.
    """
    t, b, l, r = pads
    if t == b == l == r == 0:
        return x
    h, w = x.shape[-2:]
    xp = x.new_full((*x.shape[:-2], h + t + b, w + l + r), fill)
    xp[..., t : t + h, l : l + w] = x
    return xp


def window_taps(xp: torch.Tensor, g: WindowGeometry) -> list[torch.Tensor]:
    """Tap `(i, j)` of every window as a strided view of the padded plane, row-major over the window.

    Shape:
        xp: `(..., Hp, Wp)` -> `kH * kW` views of `(..., H_out, W_out)`.
    """
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = g.kernel, g.stride, g.dilation, g.out_hw
    return [xp[..., i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
            for i in range(kh) for j in range(kw)]


def tap_rows_cols(g: WindowGeometry, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each tap (row-major), the input row of every output row and the input column of every output
    column (negative or past the input inside the padding), as `((H_out,), (W_out,))` int64 tensors."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = g.kernel, g.stride, g.dilation, g.out_hw
    t, _, l, _ = g.pads
    rows = torch.arange(ho, device=device) * sh - t
    cols = torch.arange(wo, device=device) * sw - l
    return [(rows + i * dh, cols + j * dw) for i in range(kh) for j in range(kw)]

# --- average pooling -------------------------------------------------------------------------------------------


def _axis_counts(size: int, k: int, s: int, out: int, before: int, after: int, include: bool) -> torch.Tensor:
    """Per-output window length along one axis that the divisor counts, `(out,)` float64."""
    r0 = torch.arange(out, dtype=torch.float64) * s - before
    end = torch.clamp(r0 + k, max=size + after)
    return end - r0 if include else torch.clamp(r0 + k, max=size) - torch.clamp(r0, min=0)


def divisor_plane(
    g: WindowGeometry, nominal: tuple[int, int, int, int], count_include_pad: bool, divisor_override: int | None
) -> torch.Tensor:
    """The divisor of every output position, `(H_out, W_out)` float64 (at least 1 where no pixel is covered)."""
    if divisor_override is not None:
        return torch.full(g.out_hw, float(divisor_override), dtype=torch.float64)
    rows = _axis_counts(g.in_hw[0], g.kernel[0], g.stride[0], g.out_hw[0], nominal[0], nominal[1], count_include_pad)
    cols = _axis_counts(g.in_hw[1], g.kernel[1], g.stride[1], g.out_hw[1], nominal[2], nominal[3], count_include_pad)
    return (rows[:, None] * cols[None, :]).clamp(min=1.0)


class AvgPool2dFunction(torch.autograd.Function):
    """y = (sum of each window of the zero-padded `(B, H, W)` planes) / divisor `(H_out, W_out)`."""

    @staticmethod
    def forward(x: torch.Tensor, divisor: torch.Tensor, geom: WindowGeometry) -> torch.Tensor:
        taps = window_taps(pad_plane(x, geom.pads, 0.0), geom)
        out = taps[0].clone()
        for tap in taps[1:]:
            out.add_(tap)
        return out.div_(divisor)  # (B, H_out, W_out)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, divisor, geom = inputs
        ctx.save_for_backward(divisor)
        ctx.geom = geom
        ctx.in_shape = x.shape

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        (divisor,) = ctx.saved_tensors
        g: WindowGeometry = ctx.geom
        b, h, w = ctx.in_shape
        hp, wp = g.padded_hw
        gxp = grad_out.new_zeros((b, hp, wp))
        share = grad_out / divisor  # (B, H_out, W_out)
        for gtap in window_taps(gxp, g):
            gtap.add_(share)
        t, _, l, _ = g.pads
        return gxp[:, t : t + h, l : l + w], None, None


def avg_pool2d(
    x: torch.Tensor,
    kernel_size: TorchPair,
    stride: TorchPair | None = None,
    padding: str | TorchPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> torch.Tensor:
    """`torch.nn.functional.avg_pool2d` from scratch, plus Keras's "same" (padding left out of the mean).

    Args:
        x: `(N, C, H, W)` or unbatched `(C, H, W)`.
        kernel_size, stride, padding, ceil_mode: as torch (stride None or `()` means kernel_size); padding
            may also be "valid" or "same" (TensorFlow rule, odd pixel at the bottom/right).
        count_include_pad: count the zero padding in the divisor (numeric padding only).
        divisor_override: divide every window by this instead (non-zero).

    Shape:
        Output `(N, C, H_out, W_out)` (or `(C, H_out, W_out)`), sizes as in the pooling window above.

    Example:
        >>> tuple(avg_pool2d(torch.ones(1, 2, 5, 5), 2, padding="same").shape)
        (1, 2, 3, 3)
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"avg_pool2d: x must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if divisor_override is not None and divisor_override == 0:
        raise ValueError("avg_pool2d: divisor_override must be non-zero; pass None to use the window size")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    geom, nominal = pool_geometry((h, w), kernel_size, stride, padding, 1, ceil_mode, op="avg_pool2d")
    include = bool(count_include_pad) and not isinstance(padding, str)
    divisor = divisor_plane(geom, nominal, include, divisor_override).to(device=x.device, dtype=x.dtype)
    y = AvgPool2dFunction.apply(x.reshape(-1, h, w), divisor, geom)
    return y.view(*x.shape[:-2], *geom.out_hw)

# --- global pooling --------------------------------------------------------------------------------------------


def _flat(x: torch.Tensor, op: str) -> torch.Tensor:
    if x.dim() != 4:
        raise ValueError(f"{op}: x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, H*W)


class GlobalAvgPool2dFunction(torch.autograd.Function):
    """(N, C, H, W) -> (N, C): the mean of each plane."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _flat(x, "global_avg_pool2d").sum(dim=2) / (x.shape[2] * x.shape[3])

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.in_shape = inputs[0].shape

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor | None:
        if not ctx.needs_input_grad[0]:
            return None
        n, c, h, w = ctx.in_shape
        return (grad_out / (h * w))[:, :, None, None].expand(n, c, h, w).contiguous()


class GlobalMaxPool2dFunction(torch.autograd.Function):
    """(N, C, H, W) -> (N, C): the max of each plane; the gradient goes to its first arg-max."""

    @staticmethod
    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.max(_flat(x, "global_max_pool2d"), dim=2)  # values, indices (N, C)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        _, idx = output
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(idx)
        ctx.in_shape = inputs[0].shape

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_idx: Any = None) -> torch.Tensor | None:
        if not ctx.needs_input_grad[0]:
            return None
        (idx,) = ctx.saved_tensors
        n, c, h, w = ctx.in_shape
        gx = grad_out.new_zeros((n, c, h * w)).scatter_(2, idx[:, :, None], grad_out[:, :, None])
        return gx.view(n, c, h, w)


def global_avg_pool2d(x: torch.Tensor, keepdims: bool = False) -> torch.Tensor:
    """Mean over H and W.

    Shape:
        x: `(N, C, H, W)` -> `(N, C)`, or `(N, C, 1, 1)` with keepdims.
    """
    y = GlobalAvgPool2dFunction.apply(x)
    return y[:, :, None, None] if keepdims else y


def global_max_pool2d(x: torch.Tensor, keepdims: bool = False) -> torch.Tensor:
    """Max over H and W.

    Shape:
        x: `(N, C, H, W)` -> `(N, C)`, or `(N, C, 1, 1)` with keepdims.
    """
    y, _ = GlobalMaxPool2dFunction.apply(x)
    return y[:, :, None, None] if keepdims else y
