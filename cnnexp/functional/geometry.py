"""Window geometry shared by every conv implementation and by pooling: argument types, padding arithmetic, window
placement and checks, and the autocast operand rule.

Argument types. `IntPair` is what users may pass for a 2-D size (an int means the same value on both axes);
`pair` normalises it once, at the entry of each op, to a `(height, width)` tuple.

Padding arithmetic (pure Python, no tensors). Keras/TensorFlow 'same' rule, for one axis of length `size`,
kernel `k`, stride `s`, dilation `d`:

    effective kernel  e     = (k - 1) * d + 1
    output            out   = ceil(size / s)
    total padding     total = max((out - 1) * s + e - size, 0)
    before = total // 2,  after = total - before      (the odd pixel goes after: bottom / right)

This is the rule of timm's `get_same_padding` and of TensorFlow, exact at any stride and dilation
(PyTorch's own `padding="same"` is symmetric and refuses stride > 1).

Window geometry and checks. One place validates kernel/stride/dilation/padding and computes the padded and output
sizes (`WindowGeometry`), so that `conv2d`, `conv2d_naive`, `conv2d_torch` and `max_pool2d` agree on shapes and on
error messages.

Mixed precision: the custom ops behave under `torch.autocast` as autocast treats `F.conv2d`. Autocast casts the
operands of a convolution to its lower-precision dtype (float16 / bfloat16) and runs the op in that dtype. A custom
autograd Function gets no such treatment: only the matrix products inside it would be cast, so its backward (which
runs outside autocast) would mix float16 gradients with float32 weights. So the functional wrapper casts the
operands once, up front (`autocast_operands`), and runs the Function with autocast off: forward and backward then
see one dtype, and autograd casts the gradients back to the parameters' float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import ShapeError

# --- argument types ----------------------------------------------------------------------------------------------

IntPair = int | tuple[int, int]
"""An int (same value for height and width) or an explicit `(h, w)` pair."""


def tiled_pool_hw(hw: Sequence[int], pool: Sequence[int]) -> tuple[int, int]:
    """`(H // pH, W // pW)`: the output size of a max pool whose `pool`-sized windows tile an `hw` input ('valid',
    stride = pool size), as the fused conv + pool and the compiled pool kernels compute it."""
    return hw[0] // pool[0], hw[1] // pool[1]


def pair(value: IntPair, name: str = "value") -> tuple[int, int]:
    """Normalise an `IntPair` to a `(h, w)` tuple of Python ints.

    Args:
        value: an int, or a sequence of exactly two ints.
        name: the argument's name, quoted in the error message.

    Raises:
        ValueError: when `value` is neither an int nor a pair of ints.

    Example:
        >>> pair(3), pair((2, 4))
        ((3, 3), (2, 4))
    """
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        return value  # already a pair of Python ints (the common case, taken on every call)
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints (h, w), got {value!r}")


# --- padding arithmetic ------------------------------------------------------------------------------------------

Padding = str | IntPair
"""`"valid"`, `"same"`, an int (all four sides) or an `(ph, pw)` pair (top = bottom = ph, left = right = pw)."""


def effective_kernel(kernel: int, dilation: int) -> int:
    """Extent of a dilated kernel along one axis: `(kernel - 1) * dilation + 1`."""
    return (kernel - 1) * dilation + 1


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow/Keras 'same' padding of one spatial axis.

    Args:
        size: input length along the axis.
        kernel: kernel length along the axis.
        stride: step of the sliding window.
        dilation: spacing between kernel taps.

    Returns:
        `(before, after)` with `after - before` in {0, 1}; the output length is `ceil(size / stride)`.

    Example:
        >>> same_padding(5, 3, 2)   # out = 3, total = (3 - 1) * 2 + 3 - 5 = 2
        (1, 1)
        >>> same_padding(4, 3, 2)   # out = 2, total = 1: the odd pixel goes after
        (0, 1)
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + effective_kernel(kernel, dilation) - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: Padding,
    in_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    stride: IntPair = 1,
    dilation: IntPair = 1,
) -> tuple[int, int, int, int]:
    """Turn a padding argument into explicit `(top, bottom, left, right)` amounts.

    Args:
        padding: `"valid"` (none), `"same"` (Keras rule, see `same_padding`), an int, or `(ph, pw)`.
        in_hw: input `(H, W)`.
        kernel_hw: kernel `(kH, kW)`.
        stride: int or `(sH, sW)`.
        dilation: int or `(dH, dW)`.

    Raises:
        ValueError: unknown string, or a negative amount.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            sh, sw = pair(stride, "stride")
            dh, dw = pair(dilation, "dilation")
            return (*same_padding(in_hw[0], kernel_hw[0], sh, dh), *same_padding(in_hw[1], kernel_hw[1], sw, dw))
        raise ValueError(f"padding must be 'valid', 'same', an int or a pair (ph, pw), got {padding!r}")
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return (ph, ph, pw, pw)


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: str | int | tuple[int, int] = "valid", dilation: int = 1
) -> int:
    """Output length of a convolution or pooling along one axis.

    `out = floor((size + before + after - ((kernel - 1) * dilation + 1)) / stride) + 1`, where
    `(before, after)` is 0 for `"valid"`, `same_padding(...)` for `"same"`, `(p, p)` for an int `p`,
    or the given `(before, after)` pair. With `"same"` this equals `ceil(size / stride)`.

    Returns:
        The output length; 0 or less means the (padded) input is smaller than the kernel.
    """
    if isinstance(padding, str):
        before, after = resolve_padding(padding, (size, 1), (kernel, 1), (stride, 1), (dilation, 1))[:2]
    elif isinstance(padding, int):
        before = after = padding
    else:
        before, after = padding
    return (size + before + after - effective_kernel(kernel, dilation)) // stride + 1


# --- window geometry and checks ----------------------------------------------------------------------------------


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


# --- mixed precision ---------------------------------------------------------------------------------------------


def autocast_operands(
    *tensors: torch.Tensor | None,
) -> tuple[tuple[torch.Tensor | None, ...], contextlib.AbstractContextManager]:
    """`(tensors cast to the autocast dtype, a context that turns autocast off)`; unchanged outside autocast.

    The device of the first tensor decides which autocast applies (cpu or cuda). Floating tensors only are cast.
    """
    device_type = tensors[0].device.type
    if not torch.is_autocast_enabled(device_type):
        return tensors, contextlib.nullcontext()
    dtype = torch.get_autocast_dtype(device_type)
    cast = tuple(t.to(dtype) if t is not None and t.is_floating_point() else t for t in tensors)
    return cast, torch.autocast(device_type, enabled=False)
