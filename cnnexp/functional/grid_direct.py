"""Stride-1 convolution on the flattened padded grid with the compiled direct kernel (CPU, float32).

The same grid as `grid_gemm` (shared zero padding between rows and images, see `grid_gemm.grid_dims`),
the same three formulas, but each is one call of the register-tiled kernel `kernels.direct_conv` instead of a
blocked im2col and a GEMM, and outputs and gradients are dense channels-last tensors (no margin):

    y[n, y, x]  = sum_t buf[p + off_t] @ W_t + bias       # p = (n*Hs + y)*Ws + x; W_t (C_in, C_out) of tap t
    dL/dW_t     = sum_pixels buf[p + off_t]^T G[n, y, x]  # G: the upstream gradient as it comes (NHWC)
    dL/dx       = the forward applied to G on the grid, with the flipped, transposed kernel (full correlation)

Each direction builds its own grid (the weight gradient rebuilds x's unless the caller kept the forward's: `x_grid`,
`x_from_grid`), so any two paths mix freely. The grids and the kernel's weight layout are written by the compiled
library too (`kernels.to_grid`, `kernels.tap_weights`), in one pass each: with PyTorch ops they took most of a small
convolution's time.
"""

from __future__ import annotations

import torch

from . import kernels
from .geometry import WindowGeometry, tiled_pool_hw
from .grid_gemm import grid_dims, grid_input_rows, tap_offsets, tap_span
from .im2col import empty_channels_last, nhwc_view


def usable(*operands: torch.Tensor | None) -> bool:
    """True when the compiled kernel can run this conv: x, weight (and bias, when not None) CPU float32, kernel
    built."""
    return kernels.usable(*operands)


def x_grid(x: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """x on its padded grid, as `grid_gemm.grid_input` lays it out: `(N*Hs*Ws + span, C_in)` rows."""
    hs, ws, off = grid_dims(g)
    return kernels.to_grid(x, off, grid_input_rows(g, x.shape[0]), hs, ws)


def _grid_of(x: torch.Tensor, g: WindowGeometry, grid: torch.Tensor | None) -> torch.Tensor:
    """`grid`, the caller's `x_grid(x, g)` (its shape checked), or x's grid built now."""
    if grid is None:
        return x_grid(x, g)
    assert grid.shape == (grid_input_rows(g, x.shape[0]), x.shape[1]), "the kept grid is not this x's"
    return grid


def x_from_grid(grid: torch.Tensor, x_shape: tuple[int, int, int, int], g: WindowGeometry) -> torch.Tensor:
    """The x that `x_grid(x, g)` laid out, as a view of its grid (no copy): what a backward needs to keep of x when
    it keeps the grid.

    Shape: grid `(N*Hs*Ws + span, C)` -> `(N, C, H, W)`, channels-last strides with the grid's row padding.
    """
    n, c, h, w = x_shape
    hs, ws, off = grid_dims(g)
    assert grid.shape == (grid_input_rows(g, n), c), "x_from_grid: not the grid of this x and geometry"
    return grid[off : off + n * hs * ws].view(n, hs, ws, c)[:, :h, :w].permute(0, 3, 1, 2)


def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: WindowGeometry,
            tile: int = -1) -> torch.Tensor:
    """Stride-1 conv2d (`tile`: the kernel's register-tile variant, `kernels.direct_tiles("conv")`; -1 built-in).

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)` -> `(N, C_out, H_out, W_out)`, dense channels_last.
    """
    n, c_out = x.shape[0], weight.shape[0]
    hs, ws, _ = grid_dims(g)
    y = empty_channels_last(x, (n, c_out, *g.out_hw))
    kernels.direct_conv(x_grid(x, g), (n, hs, ws, *g.out_hw), tap_offsets(g, ws), kernels.tap_weights(weight),
                        c_out, bias, out=nhwc_view(y), tile=tile)
    return y


def forward_pool(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: WindowGeometry,
                 pool: tuple[int, int], tile: int = -1, relu: bool = False,
                 grid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`forward` max pooled by `pool` = (pH, pW) windows that tile its output (then ReLU'd with `relu`), in one
    kernel call that never stores the full-size output (`kernels.direct_conv_pool`); `grid`: `x_grid(x, g)` when
    the caller built it (to keep it for the weight gradient).

    Shape:
        x, weight as `forward` -> the pooled output `(N, C_out, H_out // pH, W_out // pW)` channels_last, and each
        value's arg-max tap in its window (the same shape, uint8).
    """
    n, c_out = x.shape[0], weight.shape[0]
    hs, ws, _ = grid_dims(g)
    shape = (n, c_out, *tiled_pool_hw(g.out_hw, pool))
    y = empty_channels_last(x, shape)
    idx = empty_channels_last(x, shape, torch.uint8)
    grid = _grid_of(x, g, grid)
    kernels.direct_conv_pool(grid, (n, hs, ws, *g.out_hw), tap_offsets(g, ws), kernels.tap_weights(weight),
                             c_out, bias, pool, nhwc_view(y), nhwc_view(idx), tile=tile, relu=relu)
    return y, idx


def input_grad(grad_out: torch.Tensor, weight: torch.Tensor, x_hw: tuple[int, int], g: WindowGeometry,
               tile: int = -1, idx: torch.Tensor | None = None, pool: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """dL/dx: the forward kernel applied to the upstream gradient on the grid, with the flipped, transposed kernel
    (`tile` as in `forward`). With `idx` (`forward_pool`'s arg-max taps), grad_out is the gradient of the conv's
    max pooled output, scattered straight onto the grid (`pooled_usable`).

    Shape:
        grad_out: `(N, C_out, H_out, W_out)`, or with idx `(N, C_out, H_out // pH, W_out // pW)` and idx the same
        shape (uint8, channels_last); weight: `(C_out, C_in, kH, kW)` -> `(N, C_in, H, W)` channels_last.
    """
    n, c_in = grad_out.shape[0], weight.shape[1]
    hs, ws, off = grid_dims(g)
    span, c_pad = tap_span(g, ws), kernels.padded_channels(weight.shape[0])
    # as grid_gemm.grad_grid: span zero rows, the gradient on the grid, off zero rows: (span + rows + off, C_out')
    rows = span + n * hs * ws + off
    if idx is None:
        gbuf = kernels.to_grid(grad_out, span, rows, hs, ws, channels=c_pad)
    else:
        gbuf = kernels.pooled_to_grid(*_pooled_operands(grad_out, idx), pool, g.out_hw, span, rows, hs, ws)
    w_flip = kernels.tap_weights(weight, rows=c_pad, flip=True)  # (T, C_out', C_in')
    grad_x = empty_channels_last(grad_out, (n, c_in, *x_hw))
    kernels.direct_conv(gbuf[off:], (n, hs, ws, *x_hw), tap_offsets(g, ws), w_flip, c_in, out=nhwc_view(grad_x),
                        tile=tile)
    return grad_x


def weight_grad(x: torch.Tensor, grad_out: torch.Tensor, g: WindowGeometry, tile: int = -1,
                idx: torch.Tensor | None = None, pool: tuple[int, int] = (1, 1),
                grid: torch.Tensor | None = None) -> torch.Tensor:
    """dL/dW: the kernel's weight-gradient sum over the padded input grid of x (`grid`, the forward's `x_grid(x, g)`
    when the caller kept it, else rebuilt here from x); `tile`: a variant of `kernels.direct_tiles("weight_grad")`,
    -1 built-in. With `idx` (`forward_pool`'s arg-max taps), grad_out is the gradient of the conv's max pooled
    output, expanded inside the kernel (`pooled_usable`).

    Shape:
        x: `(N, C_in, H, W)`; grad_out: `(N, C_out, H_out, W_out)`, or with idx `(N, C_out, H_out // pH,
        W_out // pW)` and idx the same shape (uint8, channels_last) -> `(C_out, C_in, kH, kW)` contiguous.
    """
    n, c_in = x.shape[:2]
    c_out, (kh, kw), (ho, wo) = grad_out.shape[1], g.kernel, g.out_hw
    hs, ws, _ = grid_dims(g)
    c_pad = kernels.padded_channels(c_out)
    dense = nhwc_view(grad_out)  # (N, H_out, W_out, C_out'): as it comes when it already is one, else copied
    if idx is not None:
        dense, idx = _pooled_operands(grad_out, idx)
    elif c_pad != c_out or not dense.is_contiguous():
        dense = kernels.to_grid(grad_out, 0, n * ho * wo, ho, wo, channels=c_pad).view(n, ho, wo, c_pad)
    grid = _grid_of(x, g, grid)
    dw = kernels.direct_weight_grad(grid, dense, (n, hs, ws, *g.out_hw), tap_offsets(g, ws),
                                    tile=tile, idx=idx, pool=pool)  # (kH*kW, C_in, C_out')
    return dw[:, :, :c_out].reshape(kh, kw, c_in, c_out).permute(3, 2, 0, 1).contiguous()


def pooled_usable(grad_out: torch.Tensor, idx: torch.Tensor) -> bool:
    """Can `input_grad` and `weight_grad` take this pooled gradient and arg-max as they are: C_out a multiple of the
    vector width (no padding channels) and idx channels_last, as `forward_pool` writes it."""
    return (kernels.padded_channels(grad_out.shape[1]) == grad_out.shape[1]
            and idx.is_contiguous(memory_format=torch.channels_last))


def _pooled_operands(grad_out: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled gradient and its arg-max taps as the kernels read them: `(N, Hp, Wp, C_out)` contiguous each."""
    assert pooled_usable(grad_out, idx), "pooled_usable: C_out must be a multiple of the vector width"
    return nhwc_view(grad_out).contiguous(), nhwc_view(idx)
