"""The direct convolution kernel (`native/grid_conv.cpp`) for the flattened grid of `grid_gemm`: weight
layout and the two calls (CPU, float32; `native_kernels` builds and loads it).

The kernel computes a stride-1 convolution straight from the padded channels-last grid, with an R x V
register tile of output vectors per step, so neither the forward, nor the input gradient, nor the weight
gradient builds an im2col matrix (see that file). Outputs are dense `(N, H_out, W_out, C)` tensors.
"""

from __future__ import annotations

import ctypes
import functools

import torch

from . import native_kernels

GridShape = tuple[int, int, int, int, int]  # (N, Hs, Ws, H_out, W_out): see native/grid_conv.cpp


def tap_weights(weight: torch.Tensor, c_in_rows: int | None = None) -> torch.Tensor:
    """The kernel's weight layout: `(C_out, C_in, kH, kW)` -> `(kH*kW, C_in', C_out')`, zero-padded.

    `C_out'` is C_out rounded up to the vector width; `C_in' = c_in_rows or C_in` (>= C_in: extra input
    channels that the grid carries, e.g. the padding columns of a gradient buffer, get zero weights).
    """
    c_out, c_in, kh, kw = weight.shape
    out = weight.new_zeros((kh * kw, c_in_rows or c_in, native_kernels.padded_channels(c_out)))
    out[:, :c_in, :c_out] = weight.permute(2, 3, 1, 0).reshape(kh * kw, c_in, c_out)
    return out


def _offsets(offsets: list[int]) -> torch.Tensor:
    return torch.tensor(offsets, dtype=torch.int64)


@functools.cache
def tiles(which: str) -> list[tuple[int, int, int]]:
    """The kernel's register-tile variants `(R, V, KW)` for "conv" (forward and input gradient) or "weight_grad"
    (`(RC, V, KW)`), read from the library (native/grid_conv.cpp holds the one table)."""
    lib, k = native_kernels.library(), int(which == "weight_grad")
    shape = (ctypes.c_int * 3)()
    out = []
    for i in range(lib.cnnexp_tile_count(k)):
        lib.cnnexp_tile_shape(k, i, shape)
        out.append(tuple(shape))
    return out


def _check_tile(used: int, tile: int, what: str) -> None:
    if used < 0:
        raise ValueError(f"{what}: register tile {tile} cannot run this shape (see direct_conv.tiles)")


def conv(buf: torch.Tensor, grid: GridShape, offsets: list[int], w_taps: torch.Tensor, c_out: int,
         bias: torch.Tensor | None = None, out: torch.Tensor | None = None, tile: int = -1) -> torch.Tensor:
    """`out[n, y, x] = sum_t buf[p + offsets[t]] @ w_taps[t] + bias`, p = (n*Hs + y)*Ws + x the pixel's grid row.

    `tile` picks a register-tile variant (an index into `tiles("conv")`; -1: the kernel's built-in choice);
    a variant that cannot run the shape raises ValueError.

    Shape:
        buf: `(>= N*Hs*Ws + max(offsets), C)` contiguous; grid: `(N, Hs, Ws, H_out, W_out)`;
        w_taps: `(T, C, C_out')` from `tap_weights`; bias: `(C_out,)` or None -> `(N, H_out, W_out, C_out)`,
        written into `out` when given (contiguous, e.g. the `nhwc_view` of a channels-last tensor).
    """
    n, hs, ws, ho, wo = grid
    assert buf.is_contiguous() and w_taps.shape[1] == buf.shape[1] and buf.shape[0] >= n * hs * ws + max(offsets)
    out = buf.new_empty((n, ho, wo, c_out)) if out is None else out
    assert out.shape == (n, ho, wo, c_out) and out.is_contiguous()
    offs, w_taps = _offsets(offsets), w_taps.contiguous()
    bias = None if bias is None else bias.contiguous()
    used = native_kernels.library().cnnexp_grid_conv(
        buf.data_ptr(), buf.shape[1], w_taps.data_ptr(), c_out, w_taps.shape[2], offs.data_ptr(), len(offsets),
        None if bias is None else bias.data_ptr(), out.data_ptr(), n, hs, ws, ho, wo, torch.get_num_threads(), tile,
    )
    _check_tile(used, tile, "conv")
    return out


def weight_grad(buf: torch.Tensor, grad: torch.Tensor, grid: GridShape, offsets: list[int],
                tile: int = -1) -> torch.Tensor:
    """`dw[t] = sum over pixels of buf[p + offsets[t]]^T grad[n, y, x]`, the weight gradient.

    `tile`: an index into `tiles("weight_grad")`, or -1 for the kernel's built-in choice.

    Shape:
        buf: `(>= N*Hs*Ws + max(offsets), C)` contiguous; grad: `(N, H_out, W_out, C_out')` contiguous, C_out'
        a multiple of the vector width; grid: `(N, Hs, Ws, H_out, W_out)` -> `(T, C, C_out')`.
    """
    n, hs, ws, ho, wo = grid
    c_out_p = grad.shape[-1]
    assert buf.is_contiguous() and grad.is_contiguous() and c_out_p % native_kernels.vec_width() == 0
    assert grad.shape == (n, ho, wo, c_out_p) and buf.shape[0] >= n * hs * ws + max(offsets)
    dw = buf.new_zeros((len(offsets), buf.shape[1], c_out_p))
    offs = _offsets(offsets)
    used = native_kernels.library().cnnexp_grid_conv_weight_grad(
        buf.data_ptr(), buf.shape[1], grad.data_ptr(), c_out_p, offs.data_ptr(), len(offsets), dw.data_ptr(),
        n, hs, ws, ho, wo, torch.get_num_threads(), tile,
    )
    _check_tile(used, tile, "weight_grad")
    return dw
