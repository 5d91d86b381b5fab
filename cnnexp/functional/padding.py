"""Padding arithmetic shared by convolution and pooling (pure Python, no tensors).

Keras/TensorFlow 'same' rule, for one axis of length `size`, kernel `k`, stride `s`, dilation `d`:

    effective kernel  e     = (k - 1) * d + 1
    output            out   = ceil(size / s)
    total padding     total = max((out - 1) * s + e - size, 0)
    before = total // 2,  after = total - before      (the odd pixel goes after: bottom / right)

This is the rule of timm's `get_same_padding` and of TensorFlow, exact at any stride and dilation
(PyTorch's own `padding="same"` is symmetric and refuses stride > 1).
"""

from __future__ import annotations

from .types import IntPair, pair

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
