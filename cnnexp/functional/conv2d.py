"""The custom 2-D convolution: a `torch.autograd.Function` with a hand-written backward.

Forward (the lecture's "slide the kernel, multiply, sum over all channels, add the bias", batched):

    xp   = pad(x) in NHWC                                  # (N, Hp, Wp, C_in)
    cols = every window of xp as a row                     # (N*H_out*W_out, kH*kW*C_in)
    y    = cols @ W^T + bias                               # (N*H_out*W_out, C_out) == NHWC output

Backward, with g = dL/dy as `(N*H_out*W_out, C_out)`:

    dL/dbias   = sum of g over rows                        # (C_out,)
    dL/dW      = g^T @ cols                                # (C_out, kH*kW*C_in)
    dL/dx      = g @ W scattered back onto the pixels each window read (col2im), unpadded; for stride 1
                 equivalently a correlation of g with the flipped kernel (see grid_gemm.py)

Three implementations of these formulas, picked per call: stride 1 on CPU float32 runs the compiled
register-tiled kernel straight from the padded grid, with no cols matrix at all (`grid_direct`,
`direct_conv`); stride 1 elsewhere (CUDA, float64, no C++ compiler) builds cols block by block on the
same grid and multiplies (`grid_gemm`); other strides and tiny maps use the whole-batch im2col above.

No torch convolution op is called (no F.conv2d, conv_transpose, torch.nn.grad, aten.convolution*),
and nothing is differentiated by autograd: the three gradients are written out above. The output is
returned as an `(N, C_out, H_out, W_out)` tensor with channels-last strides, which is free (it is the
GEMM's output) and lets the next conv and pool read NHWC data without a transpose.
"""

from __future__ import annotations

from typing import Any

import torch

from . import grid_direct, grid_gemm
from .autocast import autocast_operands
from .geometry import WindowGeometry, check_same_dtype, conv_geometry
from .gemm import gemm
from .grouped_conv2d import conv2d_grouped
from .im2col import col2im_add_, im2col, nchw_view, nhwc_view, pad_nhwc
from .padding import Padding
from .types import IntPair


def _weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """`(C_out, C_in, kH, kW)` -> `(C_out, kH*kW*C_in)`, columns ordered like im2col's `(kH, kW, C_in)`."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def _strided_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geom: WindowGeometry):
    """Any stride: whole-batch im2col + one GEMM.

    Returns:
        `(y (N, C_out, H_out, W_out) channels_last, xp (N, Hp, Wp, C_in) padded input kept for backward)`.
    """
    ho, wo = geom.out_hw
    xp = pad_nhwc(x, geom.pads)
    cols = im2col(xp, geom)  # (M, K), M = N*H_out*W_out
    y2 = gemm(cols, _weight_matrix(weight), bias)  # (M, C_out)
    return nchw_view(y2.view(x.shape[0], ho, wo, weight.shape[0])), xp


def _strided_backward(xp, x_shape, weight, grad_out, geom: WindowGeometry, need_x: bool, need_w: bool):
    """Gradients for any stride: dW = g^T @ cols; dx = col2im(g @ W), unpadded."""
    c_out = weight.shape[0]
    g2 = nhwc_view(grad_out).reshape(-1, c_out)  # (M, C_out)
    grad_x = grad_w = None
    if need_w:
        cols = im2col(xp, geom)  # (M, K)
        gw = gemm(g2.t(), cols.t())  # (C_out, K), K ordered (kH, kW, C_in)
        kh, kw = geom.kernel
        grad_w = gw.view(c_out, kh, kw, -1).permute(0, 3, 1, 2).contiguous()  # (C_out, C_in, kH, kW)
    if need_x:
        n, c_in, h, w = x_shape
        gcols = gemm(g2, _weight_matrix(weight).t())  # (M, K)
        hp, wp = geom.padded_hw
        gxp = col2im_add_(g2.new_zeros((n, hp, wp, c_in)), gcols, geom)
        t, _, l, _ = geom.pads
        grad_x = nchw_view(gxp[:, t : t + h, l : l + w])  # (N, C_in, H, W)
    return grad_x, grad_w


GRID_MAX_OVERHEAD = 2.0  # use the padded-grid path while its dropped margin outputs are at most 100 % extra


def _use_grid(geom: WindowGeometry) -> bool:
    """Stride 1 and a small padding margin: the grid path; else (strides, tiny maps) the im2col path."""
    if geom.stride != (1, 1):
        return False
    hs, ws, _ = grid_gemm.grid_dims(geom)
    return hs * ws <= GRID_MAX_OVERHEAD * geom.out_hw[0] * geom.out_hw[1]


def _grid_impl(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """The grid module for this stride-1 conv: the compiled direct kernel where it can run (all operands CPU
    float32), else `grid_gemm`."""
    return grid_direct if grid_direct.usable(*(t for t in (x, weight, bias) if t is not None)) else grid_gemm


def _as_output(t: torch.Tensor) -> torch.Tensor:
    """The same memory as `t`, as a tensor that is not a *view* for autograd.

    The output is a crop (or permutation) of the GEMM's buffer; autograd forbids in-place ops (e.g.
    `relu_`) on a custom Function's output that is a view, so the crop is re-exposed through `set_`.
    """
    return t.new_empty(0).set_(t.untyped_storage(), t.storage_offset(), t.size(), t.stride())


class Conv2dFunction(torch.autograd.Function):
    """y = conv2d(x, weight, bias) with gradients for x, weight and bias written by hand.

    Stride 1 (any dilation) runs on the flattened padded grid: the compiled direct kernel on CPU float32
    (`grid_direct`), elsewhere `grid_gemm` (blocked im2col, one GEMM per block); both compute the input
    gradient as a full correlation with the flipped kernel. Other strides, and feature maps
    so small that the grid would more than double the work (e.g. 3x3 on 4x4 maps), use a
    whole-batch im2col and a col2im scatter-add.
    """

    @staticmethod
    def forward(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geom: WindowGeometry
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns `(y, padded_input)`; the second output is an internal buffer for backward."""
        impl = _grid_impl(x, weight, bias).forward if _use_grid(geom) else _strided_forward  # as in setup_context
        y, padded = impl(x, weight, bias, geom)
        return _as_output(y), padded

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, weight, bias, geom = inputs
        _, padded = output
        ctx.mark_non_differentiable(padded)
        ctx.save_for_backward(padded, weight)  # the padded copy of x (made anyway), not x itself
        ctx.x_shape = x.shape
        ctx.geom = geom
        ctx.has_bias = bias is not None
        ctx.grid_impl = _grid_impl(x, weight, bias) if _use_grid(geom) else None  # backward takes forward's path

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_padded: Any = None) -> tuple[torch.Tensor | None, ...]:
        padded, weight = ctx.saved_tensors
        geom: WindowGeometry = ctx.geom
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_b = grad_out.sum(dim=(0, 2, 3)) if need_b and ctx.has_bias else None  # (C_out,)
        grad_x = grad_w = None
        if need_x or need_w:
            impl = ctx.grid_impl.backward if ctx.grid_impl is not None else _strided_backward
            grad_x, grad_w = impl(padded, ctx.x_shape, weight, grad_out, geom, need_x, need_w)
        return grad_x, grad_w, grad_b, None


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
    groups: int = 1,
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
        groups: torch's grouped convolution (`groups = C_in`: depthwise); with `groups != 1` or an
            unbatched `(C_in, H, W)` input the call goes to `grouped_conv2d.conv2d_grouped`.

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)`; bias: `(C_out,)`.
        Output: `(N, C_out, H_out, W_out)`, `H_out = floor((H + top + bottom - ((kH-1)*dH + 1)) / sH) + 1`
        (`= ceil(H / sH)` for `"same"`), likewise W. The output has channels-last strides (C innermost;
        for stride 1 it sits in a slightly larger padded grid, so rows may be further apart than W*C).

    Raises:
        ValueError: bad kernel/stride/dilation/padding, channel mismatch, kernel larger than the padded
            input (`ShapeError`, a ValueError subclass, for the shape problems), operands of different
            devices or dtypes (outside autocast).

    Example:
        >>> y = conv2d(torch.randn(2, 3, 8, 8), torch.randn(16, 3, 3, 3), padding="same")
        >>> tuple(y.shape)
        (2, 16, 8, 8)
    """
    if groups != 1 or x.dim() == 3:  # torch's grouped / unbatched forms (grouped_conv2d.py)
        return conv2d_grouped(x, weight, bias, stride, padding, dilation, groups)
    geom = conv_geometry(x, weight, bias, stride, padding, dilation, op="conv2d")
    (x, weight, bias), autocast_off = autocast_operands(x, weight, bias)  # mixed precision: one dtype throughout
    check_same_dtype("conv2d", x, weight=weight, bias=bias)
    with autocast_off:
        y, _ = Conv2dFunction.apply(x, weight, bias, geom)
    return y
