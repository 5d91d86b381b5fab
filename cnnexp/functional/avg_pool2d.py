"""Average pooling with torch's contract (padding, ceil_mode, count_include_pad, divisor_override) and Keras's
"same" / "valid", with a hand-written backward.

Forward sums the window taps of the zero-padded plane (`window_taps`) and divides each output by its
divisor; backward hands `grad / divisor` back to every tap's pixels (the adjoint of the strided views).

Divisor of the window starting at row `r0` (torch's CPU kernel; columns alike, the divisor is the product):

    include = min(r0 + kH, H + pad_bottom) - r0          # window rows inside input + nominal padding
    exclude = min(r0 + kH, H) - max(r0, 0)               # window rows inside the input
    divisor = divisor_override or (include if count_include_pad else exclude)

Keras's "same" always excludes its padding (TensorFlow's average pooling), whatever count_include_pad says.
A window with no input pixel (possible with ceil_mode) outputs 0.
"""

from __future__ import annotations

from typing import Any

import torch

from .geometry import WindowGeometry
from .pool_window import TorchPair, pad_plane, pool_geometry, window_taps


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
        Output `(N, C, H_out, W_out)` (or `(C, H_out, W_out)`), sizes as in `pool_window`.

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
