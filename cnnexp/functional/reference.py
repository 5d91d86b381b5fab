"""The reference convolutions, with the contract of the custom `conv2d`: the lecture's loop and the F.conv2d baseline.

`conv2d_naive` is the lecture's convolution, literally: one output position at a time (slow; for teaching and
tests). For every output position (i, j): take the window of the padded input under the kernel, multiply it
element by element with the kernel, sum over kernel rows, columns and *all* input channels, add the
bias. One kernel gives one feature map; all kernels and all images of the batch are done at once for
each position, and autograd differentiates these plain tensor ops.

`conv2d_torch` is the baseline: PyTorch's native convolution after the same explicit padding (parity tests,
benchmarks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .geometry import IntPair, Padding, conv_geometry


def conv2d_naive(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
) -> torch.Tensor:
    """Reference convolution by a Python loop over output positions; same contract as `conv2d`.

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)`; bias: `(C_out,)`.
        Output: `(N, C_out, H_out, W_out)`.

    Example (the lecture's first value):
        >>> patch = torch.tensor([[0., 0, 0], [0, 156, 155], [0, 153, 154]]).view(1, 1, 3, 3)
        >>> kernel = torch.tensor([[-1., -1, 1], [0, 1, -1], [0, 1, 1]]).view(1, 1, 3, 3)
        >>> conv2d_naive(patch, kernel).item()
        308.0
    """
    g = conv_geometry(x, weight, bias, stride, padding, dilation, op="conv2d_naive")
    t, b, l, r = g.pads
    xp = F.pad(x, (l, r, t, b))  # (N, C_in, Hp, Wp), zeros around
    (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.stride, g.dilation
    ho, wo = g.out_hw
    out = x.new_empty((x.shape[0], weight.shape[0], ho, wo))  # (N, C_out, H_out, W_out)
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * sh, j * sw
            window = xp[:, :, r0 : r0 + (kh - 1) * dh + 1 : dh, c0 : c0 + (kw - 1) * dw + 1 : dw]  # (N, C_in, kH, kW)
            # multiply by every kernel at the same positions, sum over channels and kernel taps
            value = (window.unsqueeze(1) * weight.unsqueeze(0)).sum(dim=(2, 3, 4))  # (N, C_out)
            out[:, :, i, j] = value if bias is None else value + bias
    return out


def conv2d_torch(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
) -> torch.Tensor:
    """`torch.nn.functional.conv2d` with Keras-exact padding applied first; same contract as `conv2d`.

    Symmetric padding is passed to F.conv2d directly (no copy); asymmetric 'same' padding (the odd
    pixel at the bottom/right) is applied with `F.pad` first.

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)`; bias: `(C_out,)`.
        Output: `(N, C_out, H_out, W_out)`.
    """
    g = conv_geometry(x, weight, bias, stride, padding, dilation, op="conv2d_torch")
    t, b, l, r = g.pads
    if t == b and l == r:
        return F.conv2d(x, weight, bias, g.stride, (t, l), g.dilation)
    return F.conv2d(F.pad(x, (l, r, t, b)), weight, bias, g.stride, 0, g.dilation)
