"""The baseline: PyTorch's native convolution after the same explicit padding (parity tests, benchmarks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .geometry import conv_geometry
from .padding import Padding
from .types import IntPair


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
