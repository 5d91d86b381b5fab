"""The pooling window shared by max and average pooling: torch's arguments and Keras's 'same'/'valid'.

PyTorch's rule for one axis (input length `H`, kernel `k`, stride `s`, padding `p`, dilation `d`):

    e     = (k - 1) * d + 1                                   # extent of the dilated window
    H_out = floor_or_ceil((H + 2p - e) / s) + 1               # ceil when ceil_mode
    if ceil_mode and (H_out - 1) * s >= H + p: H_out -= 1     # the last window must start inside input or left pad

with `p <= k / 2`. A ceil_mode window may run past the bottom/right padding; those positions are read as
the padding value (-inf for max, 0 for average) and, as in torch, never counted by `count_include_pad`.
Keras's `"same"` (TensorFlow rule, odd pixel at the bottom/right) and `"valid"` come from `resolve_padding`.

`pool_geometry` turns either form into a `WindowGeometry` whose pads cover every window (so a tap is a plain
strided view of the padded plane), plus the nominal pads that `count_include_pad` counts.
`window_taps` returns those views: tap `(i, j)` of every window at once, in row-major window order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ShapeError
from .geometry import WindowGeometry
from .padding import effective_kernel, resolve_padding

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
