"""The custom 2-D convolution: a `torch.autograd.Function` with a hand-written backward.

Forward (the lecture's "slide the kernel, multiply, sum over all channels, add the bias", batched):

    xp   = pad(x) in NHWC                                  # (N, Hp, Wp, C_in)
    cols = every window of xp as a row                     # (N*H_out*W_out, kH*kW*C_in)
    y    = bias + cols @ w2                                # (N*H_out*W_out, C_out) == NHWC output

Backward, with g = dL/dy as `(N*H_out*W_out, C_out)`:

    dL/dbias   = sum of g over rows                        # (C_out,)
    dL/dw2     = cols^T @ g                                # (kH*kW*C_in, C_out)
    dL/dcols   = g @ w2^T, scattered back onto the pixels each window read (col2im), then unpadded

No torch convolution op is called (no F.conv2d, conv_transpose, torch.nn.grad, aten.convolution*),
and nothing is differentiated by autograd: the three gradients are written out above. The output is
returned as an `(N, C_out, H_out, W_out)` tensor in channels_last memory format, which is free (it is
the GEMM's output) and lets the next conv and pool read NHWC data without a transpose.
"""

from __future__ import annotations

from typing import Any

import torch

from .geometry import WindowGeometry, conv_geometry
from .im2col import col2im_add_, im2col, nchw_view, nhwc_view, pad_nhwc
from .padding import Padding
from .types import IntPair


def _weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """`(C_out, C_in, kH, kW)` -> `(kH*kW*C_in, C_out)`, rows ordered like im2col's columns."""
    c_out = weight.shape[0]
    return weight.permute(2, 3, 1, 0).reshape(-1, c_out)


class Conv2dFunction(torch.autograd.Function):
    """y = conv2d(x, weight, bias) with gradients for x, weight and bias written by hand."""

    @staticmethod
    def forward(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geom: WindowGeometry
    ) -> torch.Tensor:
        n, c_out = x.shape[0], weight.shape[0]
        ho, wo = geom.out_hw
        cols = im2col(pad_nhwc(x, geom.pads), geom)  # (M, K)
        w2 = _weight_matrix(weight)  # (K, C_out)
        y2 = torch.addmm(bias, cols, w2) if bias is not None else torch.mm(cols, w2)  # (M, C_out)
        return nchw_view(y2.view(n, ho, wo, c_out))  # (N, C_out, H_out, W_out), channels_last

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, bias, geom = inputs
        ctx.save_for_backward(x, weight)
        ctx.geom = geom
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        geom: WindowGeometry = ctx.geom
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        c_out = weight.shape[0]
        g2 = nhwc_view(grad_out).reshape(-1, c_out)  # (M, C_out)
        grad_x = grad_w = grad_b = None
        if need_b and ctx.has_bias:
            grad_b = g2.sum(0)  # (C_out,)
        if need_w:
            cols = im2col(pad_nhwc(x, geom.pads), geom)  # (M, K)
            gw = torch.mm(g2.t(), cols)  # (C_out, K), K ordered (kH, kW, C_in)
            kh, kw = geom.kernel
            grad_w = gw.view(c_out, kh, kw, -1).permute(0, 3, 1, 2).contiguous()  # (C_out, C_in, kH, kW)
        if need_x:
            n, c_in, h, w = x.shape
            gcols = torch.mm(g2, _weight_matrix(weight).t())  # (M, K)
            hp, wp = geom.padded_hw
            gxp = x.new_zeros((n, hp, wp, c_in))
            col2im_add_(gxp, gcols, geom)
            t, _, l, _ = geom.pads
            grad_x = nchw_view(gxp[:, t : t + h, l : l + w])  # (N, C_in, H, W)
        return grad_x, grad_w, grad_b, None


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
) -> torch.Tensor:
    """2-D cross-correlation (a deep-learning "convolution") with a hand-written backward.

    Args:
        x: input images.
        weight: one `(C_in, kH, kW)` kernel per output channel.
        bias: one value per output channel, or None.
        stride: step of the window, int or `(sH, sW)`.
        padding: `"valid"`, `"same"` (TensorFlow/Keras rule at any stride and dilation, odd pixel at the
            bottom/right), an int, or `(pH, pW)`.
        dilation: spacing between kernel taps, int or `(dH, dW)`.

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)`; bias: `(C_out,)`.
        Output: `(N, C_out, H_out, W_out)`, `H_out = floor((H + top + bottom - ((kH-1)*dH + 1)) / sH) + 1`
        (`= ceil(H / sH)` for `"same"`), likewise W. The output is in channels_last memory format.

    Raises:
        ValueError: bad kernel/stride/dilation/padding, channel mismatch, kernel larger than the padded
            input (`ShapeError`, a ValueError subclass, for the shape problems).

    Example:
        >>> y = conv2d(torch.randn(2, 3, 8, 8), torch.randn(16, 3, 3, 3), padding="same")
        >>> tuple(y.shape)
        (2, 16, 8, 8)
    """
    geom = conv_geometry(x, weight, bias, stride, padding, dilation, op="conv2d")
    return Conv2dFunction.apply(x, weight, bias, geom)
