"""Stride-1 convolution on a flattened padded grid: blocked im2col + one GEMM (the fast path of `conv2d`).

Flatten the padded NHWC input `xp (N, Hp, Wp, C)` to rows `xp[q] (C,)`, `q = (n*Hp + y)*Wp + x`. For
stride 1, computing the output on the *same* grid, output row `p` reads input rows `p + i*dH*Wp + j*dW`,
a fixed offset per kernel tap `(i, j)`; so a block of im2col rows is ONE strided view of the flat buffer,

    cols[p] = (xp[p + i*dH*Wp + j*dW] for i < kH, j < kW)        # (B, kH*kW*C): view (B, kH, kW, C) -> copy
    out[p]  = cols[p] @ W^T + bias                               # W: (C_out, kH*kW*C), one GEMM

Neighbouring rows and images *share* their zero padding (`grid_dims`): a row is the `W` pixels and then
`Zw = max(left, right)` zeros, which are at once its right padding and the next row's left padding
(likewise `Zh` zero rows between images). Grid positions outside `(H_out, W_out)` (the margin) are
computed and dropped: for a 3x3 'same' conv that is `(H+1)(W+1)/(HW) - 1`, 13 % at 16x16 and 27 % at
8x8 (a separate border per row and image would cost 27 % and 56 %). Because rows are processed in blocks of a few MiB, the im2col copy
stays in cache and is never materialised for the whole batch.

The gradients reuse the same machinery (each rebuilds the grid it needs: the weight gradient x's, the input
gradient the upstream gradient's). With `G` = upstream gradient on the grid (zeros off the output):

    dL/dW   = sum over blocks  G[block]^T @ cols[block]                        # (C_out, kH*kW*C)
    dL/dxp  = the same blocked im2col + GEMM applied to G, preceded by enough zero rows, with the
              kernel flipped in both axes and transposed (C_in <-> C_out): the "full correlation"
    dL/dbias = sum of G

so the gradient of x is also one GEMM per block with no scatter-add (no col2im).

Few input channels (an RGB first layer, `C_in <= PLANAR_MAX_C_IN`): an NHWC im2col row would be copied
in runs of only `kW*C_in` floats, which is slow. There the input is kept *planar*, one flat
`(Hp*Wp + span)` plane per image and channel, and the transposed im2col `colsT[(c, i, j), p] =
plane_c[p + i*dH*Wp + j*dW]` is built from whole shifted planes (long contiguous copies); the output
`colsT^T @ W^T` is still written NHWC, and dL/dW = colsT @ G.
"""

from __future__ import annotations

import math

import torch

from .geometry import WindowGeometry
from .im2col import channels_last_copy, gemm, nhwc_view, pad_nhwc

BLOCK_FLOATS = 1 << 20  # im2col floats per block (4 MiB in float32)
PLANAR_MAX_C_IN = 4  # up to this many input channels, use the planar layout (see the module docstring)


def grid_dims(g: WindowGeometry) -> tuple[int, int, int]:
    """`(Hs, Ws, offset)` of the shared-padding grid: image rows `Hs = H + Zh`, row length `Ws = W + Zw`.

    Pixel `(n, y, x)` sits at flat row `offset + (n*Hs + y)*Ws + x`, `offset = top*Ws + left`; every other
    row is zero. `Zw = max(left, right, W_out - W)` zero columns after each row serve as its right padding
    and, read across the row end, as the next row's left padding (rows likewise). Output `(n, yo, xo)` is
    grid position `(n*Hs + yo)*Ws + xo` and reads rows `+ i*dH*Ws + j*dW`.
    """
    (h, w), (ho, wo), (t, b, l, r) = g.in_hw, g.out_hw, g.pads
    hs, ws = h + max(t, b, ho - h), w + max(l, r, wo - w)
    return hs, ws, t * ws + l


def tap_offsets(g: WindowGeometry, ws: int) -> list[int]:
    """Grid-row offset of each kernel tap `(i, j)`, in row-major tap order: `i*dH*Ws + j*dW`."""
    (kh, kw), (dh, dw) = g.kernel, g.dilation
    return [i * dh * ws + j * dw for i in range(kh) for j in range(kw)]


def tap_span(g: WindowGeometry, ws: int) -> int:
    """Grid rows between the first and the last tap of a window: `(kH-1)*dH*Ws + (kW-1)*dW`."""
    return (g.kernel[0] - 1) * g.dilation[0] * ws + (g.kernel[1] - 1) * g.dilation[1]


def grad_grid(grad_out: torch.Tensor, grid_hw: tuple[int, int], off: int, span: int, channels: int = 0) -> torch.Tensor:
    """The upstream gradient on the grid, for the backward GEMMs/kernels.

    `span` zero rows first (room for the full correlation's taps), then the grid (gradient at the output
    positions, zero elsewhere), then `off` zero rows (dx is read from grid row `off` on). `channels`
    (>= C_out) pads every row with zero columns, e.g. to the kernel's vector width.

    Shape:
        grad_out: `(N, C_out, H_out, W_out)`, grid_hw `(Hs, Ws)` -> `(span + N*Hs*Ws + off, max(C_out, channels))`.
    """
    n, c_out, ho, wo = grad_out.shape
    hs, ws = grid_hw
    c = max(c_out, channels)
    rows = n * hs * ws
    gbuf = grad_out.new_empty((span + rows + off, c))
    gbuf[:span].zero_()
    gbuf[span + rows :].zero_()
    gg = gbuf[span : span + rows].view(n, hs, ws, c)
    gg[:, :ho, :wo, :c_out].copy_(nhwc_view(grad_out))
    if c > c_out:
        gg[:, :ho, :wo, c_out:].zero_()
    gg[:, ho:].zero_()
    gg[:, :ho, wo:].zero_()
    return gbuf


def _blocked_conv(
    buf: torch.Tensor, rows: int, g: WindowGeometry, wp: int, w: torch.Tensor, bias: torch.Tensor | None
):
    """`out[p] = cols[p] @ w.T + bias` for `p < rows`, cols gathered from the flat grid `buf` (row length wp).

    Shape:
        buf: `(>= rows + span, C)` rows contiguous; w: `(C_out, kH*kW*C)` -> `(rows, C_out)`.
    """
    c = buf.shape[1]
    (kh, kw), (dh, dw) = g.kernel, g.dilation
    k = kh * kw * c
    strides = (c, dh * wp * c, dw * c, 1)
    block = max(256, BLOCK_FLOATS // k)
    if block >= rows:
        return gemm(buf.as_strided((rows, kh, kw, c), strides, buf.storage_offset()).reshape(rows, k), w, bias)
    out = buf.new_empty((rows, w.shape[0]))
    cols = buf.new_empty((block, k))
    for p0 in range(0, rows, block):
        b = min(block, rows - p0)
        view = buf.as_strided((b, kh, kw, c), strides, buf.storage_offset() + p0 * c)
        cols[:b].view(b, kh, kw, c).copy_(view)
        out[p0 : p0 + b] = gemm(cols[:b], w, bias)
    return out


def grid_input_rows(g: WindowGeometry, n: int) -> int:
    """Rows of `grid_input`'s buffer for n images: the grid, then room for the last window's taps (and for the
    `off` leading zero rows before the first pixel)."""
    hs, ws, off = grid_dims(g)
    rows = n * hs * ws
    return max(rows + tap_span(g, ws), off + rows)


def grid_input(x: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """x on the shared-padding grid (`grid_dims`), NHWC: `(N*Hs*Ws + span, C)` rows, zero off the pixels."""
    n, c, h, w = x.shape
    hs, ws, off = grid_dims(g)
    rows = n * hs * ws
    buf = x.new_empty((grid_input_rows(g, n), c))
    buf[:off].zero_()
    buf[off + rows :].zero_()
    pad_nhwc(x, (0, hs - h, 0, ws - w), out=buf[off : off + rows].view(n, hs, ws, c))
    return buf


def _planar_input(x: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """x padded into one flat plane per image and channel: `(N, C, Hp*Wp + span)`, the tail zero."""
    n, c = x.shape[:2]
    hp, wp = g.padded_hw
    plane, span = hp * wp, tap_span(g, wp)
    buf = x.new_empty((n, c, plane + span))
    t, b, l, r = g.pads
    grid = buf[:, :, :plane].view(n, c, hp, wp)
    for sl in ((slice(None), slice(None), slice(0, t)), (slice(None), slice(None), slice(hp - b, hp)),
               (Ellipsis, slice(0, l)), (Ellipsis, slice(wp - r, wp))):
        grid[sl].zero_()
    grid[:, :, t : hp - b, l : wp - r].copy_(x)
    buf[:, :, plane:].zero_()
    return buf


def _planar_groups(buf: torch.Tensor, g: WindowGeometry, valid_only: bool = False):
    """Yield `(n0, n1, colsT)`: transposed im2col of images n0..n1-1, contiguous.

    Forward: every grid position `Hp*Wp`, colsT `(G, C*kH*kW, Hp*Wp)` (one matrix per image).
    `valid_only` (weight gradient): only the `H_out*W_out` real outputs, with the images side by side,
    colsT `(C*kH*kW, G*H_out*W_out)`: one long matrix, so that dW is ONE GEMM per group.
    """
    n, c, stride_plane = buf.shape
    (kh, kw), (dh, dw), (hp, wp), (ho, wo) = g.kernel, g.dilation, g.padded_hw, g.out_hw
    pos_shape, pos_strides = ((ho, wo), (wp, 1)) if valid_only else ((hp * wp,), (1,))
    positions, k = math.prod(pos_shape), c * kh * kw
    group = max(1, BLOCK_FLOATS // (k * positions))
    flat = buf.new_empty(min(group, n) * k * positions)
    for n0 in range(0, n, group):
        m = min(n, n0 + group) - n0
        view = buf.as_strided(
            (m, c, kh, kw, *pos_shape), (c * stride_plane, stride_plane, dh * wp, dw, *pos_strides),
            buf.storage_offset() + n0 * c * stride_plane,
        )  # (G, C, kH, kW, *positions)
        if valid_only:
            cols = flat[: m * k * positions].view(c, kh, kw, m, *pos_shape)
            cols.copy_(view.movedim(0, 3))
            yield n0, n0 + m, cols.view(k, m * positions)
        else:
            cols = flat[: m * k * positions].view(m, c, kh, kw, *pos_shape)
            cols.copy_(view)
            yield n0, n0 + m, cols.view(m, k, positions)


def _planar_forward(buf: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: WindowGeometry):
    """`(N, Hp*Wp, C_out)` NHWC grid output from a planar input buffer."""
    n, c_out = buf.shape[0], weight.shape[0]
    hp, wp = g.padded_hw
    out = buf.new_empty((n, hp * wp, c_out))
    w_t = weight.reshape(c_out, -1).t()  # (C_in*kH*kW, C_out), rows ordered (c, i, j) like colsT
    for n0, n1, cols_t in _planar_groups(buf, g):
        torch.matmul(cols_t.transpose(1, 2), w_t, out=out[n0:n1])  # (G, Hp*Wp, C_out)
    if bias is not None:
        out.add_(bias)
    return out


def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: WindowGeometry) -> torch.Tensor:
    """Stride-1 conv2d.

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)` -> `(N, C_out, H_out, W_out)`, dense channels_last
        (the crop of the grid's output is copied out, so that the op returns a tensor of its own).
    """
    n, c_out = x.shape[0], weight.shape[0]
    ho, wo = g.out_hw
    if x.shape[1] <= PLANAR_MAX_C_IN:
        hp, wp = g.padded_hw
        out = _planar_forward(_planar_input(x, g), weight, bias, g)  # (N, Hp*Wp, C_out)
    else:
        hp, wp, _ = grid_dims(g)
        w = weight.permute(0, 2, 3, 1).reshape(c_out, -1)  # (C_out, kH*kW*C_in), taps (i, j, c)
        out = _blocked_conv(grid_input(x, g), n * hp * wp, g, wp, w, bias)  # (N*Hs*Ws, C_out)
    return channels_last_copy(out.view(n, hp, wp, c_out)[:, :ho, :wo])


def weight_grad(x: torch.Tensor, grad_out: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """dL/dW of the stride-1 conv2d: `sum over blocks G[block]^T @ cols[block]` on x's padded grid.

    Shape:
        x: `(N, C_in, H, W)`; grad_out: `(N, C_out, H_out, W_out)` -> `(C_out, C_in, kH, kW)` contiguous.
    """
    n, c_in = x.shape[:2]
    c_out, (kh, kw), (ho, wo) = grad_out.shape[1], g.kernel, g.out_hw
    if c_in <= PLANAR_MAX_C_IN:  # dW^T = colsT @ G over the real output positions, one GEMM per image group
        gw_t = None
        g_rows = nhwc_view(grad_out).reshape(n * ho * wo, c_out)  # (N*H_out*W_out, C_out)
        for n0, n1, cols_t in _planar_groups(_planar_input(x, g), g, valid_only=True):  # (C_in*kH*kW, G*Ho*Wo)
            part = gemm(cols_t, g_rows[n0 * ho * wo : n1 * ho * wo].t())  # (C_in*kH*kW, C_out)
            gw_t = part if gw_t is None else gw_t.add_(part)
        return gw_t.t().reshape(c_out, c_in, kh, kw).contiguous()
    hp, wp, off = grid_dims(g)
    rows, span = n * hp * wp, tap_span(g, wp)
    buf = grid_input(x, g)  # (N*Hs*Ws + span, C_in)
    gflat = grad_grid(grad_out, (hp, wp), off, span)[span : span + rows]  # (rows, C_out)
    k = kh * kw * c_in
    strides = (c_in, g.dilation[0] * wp * c_in, g.dilation[1] * c_in, 1)
    block = max(256, BLOCK_FLOATS // k)
    cols = buf.new_empty((min(block, rows), k))
    gw = None
    for p0 in range(0, rows, block):
        b = min(block, rows - p0)
        view = buf.as_strided((b, kh, kw, c_in), strides, buf.storage_offset() + p0 * c_in)
        cols[:b].view(b, kh, kw, c_in).copy_(view)
        part = gemm(gflat[p0 : p0 + b].t(), cols[:b].t())  # (C_out, K)
        gw = part if gw is None else gw.add_(part)
    return gw.view(c_out, kh, kw, c_in).permute(0, 3, 1, 2).contiguous()  # (C_out, C_in, kH, kW)


def input_grad(grad_out: torch.Tensor, weight: torch.Tensor, x_hw: tuple[int, int], g: WindowGeometry) -> torch.Tensor:
    """dL/dx of the stride-1 conv2d: the blocked im2col + GEMM of the upstream gradient on the grid with the
    flipped, transposed kernel (the full correlation).

    Shape:
        grad_out: `(N, C_out, H_out, W_out)`; weight: `(C_out, C_in, kH, kW)` -> `(N, C_in, H, W)` channels_last.
    """
    n, c_in = grad_out.shape[0], weight.shape[1]
    h, w = x_hw
    hp, wp, off = grid_dims(g)
    rows = n * hp * wp
    gbuf = grad_grid(grad_out, (hp, wp), off, tap_span(g, wp))  # (span + rows + off, C_out)
    w_flip = weight.flip(2, 3).permute(1, 2, 3, 0).reshape(c_in, -1)  # (C_in, kH*kW*C_out)
    dxp = _blocked_conv(gbuf[off:], rows, g, wp, w_flip, None)  # (N*Hs*Ws, C_in), pixel (n, y, x) at row
    return channels_last_copy(dxp.view(n, hp, wp, c_in)[:, :h, :w])  # (n*Hs + y)*Ws + x (the grid minus off)
