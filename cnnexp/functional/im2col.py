"""Channels-last window plumbing for the custom convolution: pad, gather patches, scatter them back.

Everything here works on NHWC tensors, `(N, H, W, C)` with C innermost, because there a window's
`kW * C_in` values of one kernel row lie next to each other in memory, and a conv becomes one GEMM:

    cols (N * H_out * W_out, kH * kW * C_in)  @  w2 (kH * kW * C_in, C_out)  ->  (N * H_out * W_out, C_out)

and the GEMM's output *is* the NHWC output. Only strided views and plain copies/adds are used, so
the same code runs on CPU and CUDA.
"""

from __future__ import annotations

import torch

from .geometry import WindowGeometry


def nhwc_view(x: torch.Tensor) -> torch.Tensor:
    """`(N, C, H, W)` -> `(N, H, W, C)` view (contiguous when x is in channels_last memory format)."""
    return x.permute(0, 2, 3, 1)


def nchw_view(x: torch.Tensor) -> torch.Tensor:
    """`(N, H, W, C)` -> `(N, C, H, W)` view (channels_last strides when x is contiguous)."""
    return x.permute(0, 3, 1, 2)


def pad_nhwc(
    x: torch.Tensor, pads: tuple[int, int, int, int], fill: float = 0.0, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Copy `x` into a contiguous, padded NHWC buffer (no copy when it already is one, pads are 0 and
    no `out` is given).

    Shape:
        x: `(N, C, H, W)` in any memory format -> `(N, H + top + bottom, W + left + right, C)`.
    """
    t, b, l, r = pads
    xh = nhwc_view(x)  # (N, H, W, C)
    if out is None and t == b == l == r == 0:
        return xh.contiguous()
    n, h, w, c = xh.shape
    if out is None:
        out = x.new_empty((n, h + t + b, w + l + r, c))
    if t:
        out[:, :t].fill_(fill)
    if b:
        out[:, h + t :].fill_(fill)
    if l:
        out[:, t : t + h, :l].fill_(fill)
    if r:
        out[:, t : t + h, w + l :].fill_(fill)
    out[:, t : t + h, l : l + w].copy_(xh)
    return out


def patches(xp: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """All windows of a padded NHWC buffer as a strided view (no copy).

    Shape:
        xp: `(N, Hp, Wp, C)` contiguous -> `(N, H_out, W_out, kH, kW, C)`.
    """
    n, _, _, c = xp.shape
    sn, sh_, sw_, sc = xp.stride()
    (kh, kw), (st_h, st_w), (dh, dw) = g.kernel, g.stride, g.dilation
    ho, wo = g.out_hw
    return xp.as_strided(
        (n, ho, wo, kh, kw, c),
        (sn, sh_ * st_h, sw_ * st_w, sh_ * dh, sw_ * dw, sc),
        xp.storage_offset(),
    )


def im2col(xp: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """Gather every window into one row of a contiguous matrix.

    Shape:
        xp: `(N, Hp, Wp, C)` -> `(N * H_out * W_out, kH * kW * C)`, columns ordered `(kH, kW, C)`.
    """
    n, _, _, c = xp.shape
    ho, wo = g.out_hw
    return patches(xp, g).reshape(n * ho * wo, g.kernel[0] * g.kernel[1] * c)


def col2im_add_(gxp: torch.Tensor, cols: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """Scatter-add window rows back onto a padded NHWC buffer (the adjoint of `im2col`), in place.

    One strided add per kernel tap `(i, j)`: the tap's value of every window lands on the input pixel
    it was read from.

    Shape:
        gxp: `(N, Hp, Wp, C)`; cols: `(N * H_out * W_out, kH * kW * C)`. Returns gxp.
    """
    n, _, _, c = gxp.shape
    (kh, kw), (st_h, st_w), (dh, dw) = g.kernel, g.stride, g.dilation
    ho, wo = g.out_hw
    cv = cols.view(n, ho, wo, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            gxp[:, r0 : r0 + st_h * (ho - 1) + 1 : st_h, c0 : c0 + st_w * (wo - 1) + 1 : st_w].add_(cv[:, :, :, i, j])
    return gxp
