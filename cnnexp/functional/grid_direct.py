"""Stride-1 convolution on the flattened padded grid with the compiled direct kernel (CPU, float32).

The same grid as `grid_gemm` (shared zero padding between rows and images, see `grid_gemm.grid_dims`),
the same three formulas, but each is one call of `direct_conv`'s register-tiled kernel instead of a
blocked im2col and a GEMM, and outputs and gradients are dense channels-last tensors (no margin):

    y[n, y, x]  = sum_t buf[p + off_t] @ W_t + bias       # p = (n*Hs + y)*Ws + x; W_t (C_in, C_out) of tap t
    dL/dW_t     = sum_pixels buf[p + off_t]^T G[n, y, x]  # G: the upstream gradient as it comes (NHWC)
    dL/dx       = the forward applied to G on the grid, with the flipped, transposed kernel (full correlation)

`grid_gemm.backward` accepts the buffer this forward returns, so the two paths mix freely.
"""

from __future__ import annotations

import torch

from . import direct_conv, native_kernels
from .geometry import WindowGeometry
from .grid_gemm import grad_grid, grid_dims, grid_input, tap_offsets, tap_span
from .im2col import nchw_view, nhwc_view


def usable(*operands: torch.Tensor) -> bool:
    """True when the compiled kernel can run this conv: x, weight (and bias) CPU float32, kernel built."""
    return native_kernels.usable(*operands)


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: WindowGeometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stride-1 conv2d.

    Returns:
        `(y, buf)`: y `(N, C_out, H_out, W_out)` (channels_last memory format) and the flat padded input
        grid `(N*Hs*Ws + span, C_in)`, which backward reuses for the weight gradient.
    """
    n, c_out = x.shape[0], weight.shape[0]
    hs, ws, _ = grid_dims(g)
    buf = grid_input(x, g)
    grid = (n, hs, ws, *g.out_hw)
    out = direct_conv.conv(buf, grid, tap_offsets(g, ws), direct_conv.tap_weights(weight), c_out, bias)
    return nchw_view(out), buf


def _dense_grad(grad_out: torch.Tensor, channels: int) -> torch.Tensor:
    """grad_out as a contiguous NHWC tensor with `channels` (>= C_out) columns, zero-padded; no copy when it
    already is one."""
    g = nhwc_view(grad_out)  # (N, H_out, W_out, C_out)
    if g.shape[-1] == channels:
        return g.contiguous()
    out = g.new_zeros((*g.shape[:3], channels))
    out[..., : g.shape[-1]] = g
    return out


def backward(
    buf: torch.Tensor,
    x_shape: torch.Size,
    weight: torch.Tensor,
    grad_out: torch.Tensor,
    g: WindowGeometry,
    need_x: bool,
    need_w: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients for x `(N, C_in, H, W)` and weight `(C_out, C_in, kH, kW)` from `forward`'s grid buffer."""
    n, c_in, h, w = x_shape
    c_out, _, kh, kw = weight.shape
    hs, ws, off = grid_dims(g)
    offsets = tap_offsets(g, ws)
    c_pad = native_kernels.padded_channels(c_out)
    grad_x = grad_w = None
    if need_w:
        dense = _dense_grad(grad_out, c_pad)  # (N, H_out, W_out, C_out')
        dw = direct_conv.weight_grad(buf, dense, (n, hs, ws, *g.out_hw), offsets)  # (kH*kW, C_in, C_out')
        grad_w = dw[:, :, :c_out].reshape(kh, kw, c_in, c_out).permute(3, 2, 0, 1).contiguous()
    if need_x:
        gbuf = grad_grid(grad_out, (hs, ws), off, tap_span(g, ws), channels=c_pad)  # (span + rows + off, C_out')
        w_flip = direct_conv.tap_weights(weight.flip(2, 3).transpose(0, 1), c_in_rows=c_pad)  # (T, C_out', C_in')
        grad_x = nchw_view(direct_conv.conv(gbuf[off:], (n, hs, ws, h, w), offsets, w_flip, c_in))
    return grad_x, grad_w
