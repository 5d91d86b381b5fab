"""Argument checks and sliding-window geometry shared by every conv implementation and by pooling.

One place validates kernel/stride/dilation/padding and computes the padded and output sizes, so that
`conv2d`, `conv2d_naive`, `conv2d_torch` and `max_pool2d` agree on shapes and on error messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import ShapeError
from .padding import Padding, effective_kernel, resolve_padding
from .types import IntPair, pair


@dataclass(frozen=True)
class WindowGeometry:
    """Where a `kernel` slides over an input plane.

    Attributes:
        kernel: `(kH, kW)`.
        stride: `(sH, sW)`.
        dilation: `(dH, dW)`.
        pads: `(top, bottom, left, right)`.
        in_hw: input `(H, W)` before padding.
        out_hw: output `(H_out, W_out)`.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    @property
    def padded_hw(self) -> tuple[int, int]:
        """`(H + top + bottom, W + left + right)`."""
        t, b, l, r = self.pads
        return (self.in_hw[0] + t + b, self.in_hw[1] + l + r)


def window_geometry(
    in_hw: tuple[int, int],
    kernel: IntPair,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
    op: str = "conv2d",
) -> WindowGeometry:
    """Validate the window arguments and compute the output size.

    Raises:
        ValueError: kernel, stride or dilation below 1, or a bad padding.
        ShapeError (a ValueError): the (dilated) kernel is larger than the padded input.
    """
    kh, kw = pair(kernel, "kernel_size")
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    for name, (a, b) in (("kernel_size", (kh, kw)), ("stride", (sh, sw)), ("dilation", (dh, dw))):
        if a < 1 or b < 1:
            raise ValueError(f"{op}: {name} must be >= 1 on both axes, got {(a, b)}")
    pads = resolve_padding(padding, in_hw, (kh, kw), (sh, sw), (dh, dw))
    hp, wp = in_hw[0] + pads[0] + pads[1], in_hw[1] + pads[2] + pads[3]
    eh, ew = effective_kernel(kh, dh), effective_kernel(kw, dw)
    if eh > hp or ew > wp:
        raise ShapeError(
            f"{op}: kernel_size {(kh, kw)} (dilated extent {(eh, ew)}) is larger than the padded input "
            f"{(hp, wp)} (input {tuple(in_hw)}, padding {padding!r}); use a smaller kernel or dilation, "
            f"padding='same', or a larger input"
        )
    out_hw = ((hp - eh) // sh + 1, (wp - ew) // sw + 1)
    return WindowGeometry((kh, kw), (sh, sw), (dh, dw), pads, (int(in_hw[0]), int(in_hw[1])), out_hw)


def op_geometry(
    in_hw: Sequence[int], kernel: Sequence[int], stride: Sequence[int], pads: Sequence[int],
    dilation: Sequence[int] = (1, 1),
) -> WindowGeometry:
    """The geometry from the custom ops' explicit arguments (already validated by `window_geometry`).

    Plain arithmetic with no checks and no `int()`, so that the ops' fake implementations can call it on symbolic
    sizes (a dynamic batch or image size under torch.export / torch.compile).
    """
    (kh, kw), (sh, sw), (dh, dw), (t, b, l, r) = tuple(kernel), tuple(stride), tuple(dilation), tuple(pads)
    hp, wp = in_hw[0] + t + b, in_hw[1] + l + r
    out_hw = ((hp - effective_kernel(kh, dh)) // sh + 1, (wp - effective_kernel(kw, dw)) // sw + 1)
    return WindowGeometry((kh, kw), (sh, sw), (dh, dw), (t, b, l, r), (in_hw[0], in_hw[1]), out_hw)


def check_same_dtype(op: str, x: torch.Tensor, **others: torch.Tensor | None) -> None:
    """Raise ValueError naming the tensor whose dtype differs from x's (e.g. a float64 bias with float32 x)."""
    for name, t in others.items():
        if t is not None and t.dtype != x.dtype:
            raise ValueError(f"{op}: {name} is {t.dtype} but x is {x.dtype}; cast them to one dtype "
                             f"(e.g. {name}.to(x.dtype)), or run under torch.autocast for mixed precision")


def conv_geometry(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntPair,
    padding: Padding,
    dilation: IntPair,
    op: str = "conv2d",
) -> WindowGeometry:
    """Check conv2d's tensors (ranks, channels, bias length, device) and return the window geometry.

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)`; bias: `(C_out,)` or None.
    """
    if x.dim() != 4:
        raise ShapeError(f"{op}: x must be 4-D (N, C_in, H, W), got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ShapeError(f"{op}: weight must be 4-D (C_out, C_in, kH, kW), got shape {tuple(weight.shape)}")
    if x.shape[1] != weight.shape[1]:
        raise ShapeError(
            f"{op}: x has {x.shape[1]} channels but weight expects C_in={weight.shape[1]} "
            f"(x {tuple(x.shape)}, weight {tuple(weight.shape)}); make weight.shape[1] equal x.shape[1]"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ShapeError(f"{op}: bias must have shape ({weight.shape[0]},) = (C_out,), got {tuple(bias.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{op}: {name} is on {t.device} but x is on {x.device}; move them to one device")
    kernel = (int(weight.shape[2]), int(weight.shape[3]))
    return window_geometry((int(x.shape[2]), int(x.shape[3])), kernel, stride, padding, dilation, op)
