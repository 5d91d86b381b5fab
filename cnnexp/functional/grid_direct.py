"""Stride-1 convolution on the flattened padded grid with the compiled direct kernel (CPU, float32).

The same grid as `grid_gemm` (shared zero padding between rows and images, see `grid_gemm.grid_dims`),
the same three formulas, but each is one call of the register-tiled kernel `kernels.direct_conv` instead of a
blocked im2col and a GEMM, and outputs and gradients are dense channels-last tensors (no margin):

    y[n, y, x]  = sum_t buf[p + off_t] @ W_t + bias       # p = (n*Hs + y)*Ws + x; W_t (C_in, C_out) of tap t
    dL/dW_t     = sum_pixels buf[p + off_t]^T G[n, y, x]  # G: the upstream gradient as it comes (NHWC)
    dL/dx       = the forward applied to G on the grid, with the flipped, transposed kernel (full correlation)

Each direction builds its own grid (the weight gradient rebuilds x's), so any two paths mix freely.
"""

from __future__ import annotations

import torch

from . import kernels
from .geometry import WindowGeometry
from .grid_gemm import grad_grid, grid_dims, grid_input, tap_offsets, tap_span
from .im2col import empty_channels_last, nhwc_view


def usable(*operands: torch.Tensor) -> bool:
    """True when the compiled kernel can run this conv: x, weight (and bias) CPU float32, kernel built."""
    return kernels.usable(*operands)


def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: WindowGeometry,
            tile: int = -1) -> torch.Tensor:
    """Stride-1 conv2d (`tile`: the kernel's register-tile variant, `kernels.direct_tiles("conv")`; -1 built-in).

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)` -> `(N, C_out, H_out, W_out)`, dense channels_last.
    """
    n, c_out = x.shape[0], weight.shape[0]
    hs, ws, _ = grid_dims(g)
    y = empty_channels_last(x, (n, c_out, *g.out_hw))
    kernels.direct_conv(grid_input(x, g), (n, hs, ws, *g.out_hw), tap_offsets(g, ws), kernels.tap_weights(weight),
                        c_out, bias, out=nhwc_view(y), tile=tile)
    return y


def _dense_grad(grad_out: torch.Tensor, channels: int) -> torch.Tensor:
    """grad_out as a contiguous NHWC tensor with `channels` (>= C_out) columns, zero-padded; no copy when it
    already is one."""
    g = nhwc_view(grad_out)  # (N, H_out, W_out, C_out)
    if g.shape[-1] == channels:
        return g.contiguous()
    out = g.new_zeros((*g.shape[:3], channels))
    out[..., : g.shape[-1]] = g
    return out


def input_grad(grad_out: torch.Tensor, weight: torch.Tensor, x_hw: tuple[int, int], g: WindowGeometry,
               tile: int = -1) -> torch.Tensor:
    """dL/dx: the forward kernel applied to the upstream gradient on the grid, with the flipped, transposed kernel
    (`tile` as in `forward`).

    Shape:
        grad_out: `(N, C_out, H_out, W_out)`; weight: `(C_out, C_in, kH, kW)` -> `(N, C_in, H, W)` channels_last.
    """
    n, c_in = grad_out.shape[0], weight.shape[1]
    hs, ws, off = grid_dims(g)
    c_pad = kernels.padded_channels(weight.shape[0])
    gbuf = grad_grid(grad_out, (hs, ws), off, tap_span(g, ws), channels=c_pad)  # (span + rows + off, C_out')
    w_flip = kernels.tap_weights(weight.flip(2, 3).transpose(0, 1), c_in_rows=c_pad)  # (T, C_out', C_in')
    grad_x = empty_channels_last(grad_out, (n, c_in, *x_hw))
    kernels.direct_conv(gbuf[off:], (n, hs, ws, *x_hw), tap_offsets(g, ws), w_flip, c_in, out=nhwc_view(grad_x),
                        tile=tile)
    return grad_x


def weight_grad(x: torch.Tensor, grad_out: torch.Tensor, g: WindowGeometry, tile: int = -1) -> torch.Tensor:
    """dL/dW: the kernel's weight-gradient sum over the padded input grid of x (rebuilt here from x); `tile`: a
    variant of `kernels.direct_tiles("weight_grad")`, -1 built-in.

    Shape:
        x: `(N, C_in, H, W)`; grad_out: `(N, C_out, H_out, W_out)` -> `(C_out, C_in, kH, kW)` contiguous.
    """
    n, c_in = x.shape[:2]
    c_out, (kh, kw) = grad_out.shape[1], g.kernel
    hs, ws, _ = grid_dims(g)
    dense = _dense_grad(grad_out, kernels.padded_channels(c_out))  # (N, H_out, W_out, C_out')
    dw = kernels.direct_weight_grad(grid_input(x, g), dense, (n, hs, ws, *g.out_hw), tap_offsets(g, ws),
                                    tile=tile)  # (kH*kW, C_in, C_out')
    return dw[:, :, :c_out].reshape(kh, kw, c_in, c_out).permute(3, 2, 0, 1).contiguous()
