"""Channels-last window plumbing for the custom convolution: pad, gather patches, scatter them back.

Everything here works on NHWC tensors, `(N, H, W, C)` with C innermost, because there a window's
`kW * C_in` values of one kernel row lie next to each other in memory, and a conv becomes one GEMM:

    cols (N * H_out * W_out, kH * kW * C_in)  @  w2 (kH * kW * C_in, C_out)  ->  (N * H_out * W_out, C_out)

and the GEMM's output *is* the NHWC output. Only strided views and plain copies/adds are used, so
the same code runs on CPU and CUDA.

`forward`, `input_grad` and `weight_grad` are the convolution for any stride on whole-batch im2col matrices
(`conv2d` uses them for strides > 1 and for maps too small for the padded grid of `grid_gemm`).

`gemm` is the one matrix product the custom convolution is built on: `a @ w.T + bias`. On CPU in float32 it uses
oneDNN's inner-product (matmul) primitive, `torch.ops.mkldnn._linear_pointwise`, when PyTorch ships it: on the
AMD EPYC this project benchmarks on, MKL's sgemm reaches ~40 GFLOP/s for the tall-skinny shapes of a convolution
(rows = pixels, 48-576 columns, 16-64 outputs) while oneDNN's JIT kernels reach ~150. It is a plain matrix
product, not a convolution primitive. Everywhere else (CUDA, float64, builds without oneDNN, TorchScript tracing)
it is `torch.addmm` / `torch.mm`.
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


def empty_channels_last(like: torch.Tensor, shape: tuple[int, int, int, int] | torch.Size,
                        dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialised `(N, C, H, W)` tensor on like's device (of like's dtype unless `dtype` is given) with dense
    channels-last strides.

    Not a view of anything: the custom ops return such tensors (autograd forbids in-place ops on a view that a
    custom op returns), and their kernels write into its `nhwc_view`, which is contiguous.
    """
    return torch.empty(tuple(shape), dtype=dtype or like.dtype, device=like.device, memory_format=torch.channels_last)


def channels_last_copy(nhwc: torch.Tensor) -> torch.Tensor:
    """`(N, H, W, C)` in any layout -> a new `(N, C, H, W)` tensor with dense channels-last strides (one copy)."""
    n, h, w, c = nhwc.shape
    out = empty_channels_last(nhwc, (n, c, h, w))
    nhwc_view(out).copy_(nhwc)
    return out


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


# --- the matrix product ----------------------------------------------------------------------------------------


def _has_onednn_linear() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


ONEDNN_LINEAR = _has_onednn_linear()


def gemm(a: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`a @ w.T (+ bias)`.

    Shape:
        a: `(M, K)`; w: `(N, K)` (any strides; other than row/column-major ones are copied); bias: `(N,)` or None -> `(M, N)` contiguous.
    """
    if (ONEDNN_LINEAR and a.device.type == "cpu" and a.dtype == torch.float32 and w.dtype == torch.float32
            and not torch.jit.is_tracing()):  # TorchScript (TensorBoard's graph) cannot trace the oneDNN op
        # oneDNN takes row- or column-major operands as they are, but crawls on others (e.g. the stride-0
        # upstream gradient of `y.sum()`): give it a dense copy of those
        a, w = (t if t.is_contiguous() or t.t().is_contiguous() else t.contiguous() for t in (a, w))
        return torch.ops.mkldnn._linear_pointwise(a, w, bias, "none", [], "")
    return torch.addmm(bias, a, w.t()) if bias is not None else torch.mm(a, w.t())


# --- the convolution on whole-batch im2col matrices ------------------------------------------------------------


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """`(C_out, C_in, kH, kW)` -> `(C_out, kH*kW*C_in)`, columns ordered like im2col's `(kH, kW, C_in)`."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: WindowGeometry) -> torch.Tensor:
    """conv2d at any stride: `y = im2col(pad(x)) @ W^T + bias`, one GEMM for the whole batch.

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)` -> `(N, C_out, H_out, W_out)`, dense channels_last.
    """
    ho, wo = g.out_hw
    y2 = gemm(im2col(pad_nhwc(x, g.pads), g), weight_matrix(weight), bias)  # (N*H_out*W_out, C_out)
    return channels_last_copy(y2.view(x.shape[0], ho, wo, weight.shape[0]))


def weight_grad(x: torch.Tensor, grad_out: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """`dL/dW = G^T @ im2col(pad(x))`.

    Shape:
        x: `(N, C_in, H, W)`; grad_out: `(N, C_out, H_out, W_out)` -> `(C_out, C_in, kH, kW)` contiguous.
    """
    c_out, (kh, kw) = grad_out.shape[1], g.kernel
    g2 = nhwc_view(grad_out).reshape(-1, c_out)  # (M, C_out)
    gw = gemm(g2.t(), im2col(pad_nhwc(x, g.pads), g).t())  # (C_out, K), K ordered (kH, kW, C_in)
    return gw.view(c_out, kh, kw, -1).permute(0, 3, 1, 2).contiguous()  # (C_out, C_in, kH, kW)


def input_grad(grad_out: torch.Tensor, weight: torch.Tensor, x_hw: tuple[int, int], g: WindowGeometry) -> torch.Tensor:
    """`dL/dx = col2im(G @ W)`, unpadded.

    Shape:
        grad_out: `(N, C_out, H_out, W_out)`; weight: `(C_out, C_in, kH, kW)` -> `(N, C_in, H, W)` channels_last.
    """
    n, c_out, c_in = grad_out.shape[0], weight.shape[0], weight.shape[1]
    (h, w), (hp, wp), (t, _, l, _) = x_hw, g.padded_hw, g.pads
    g2 = nhwc_view(grad_out).reshape(-1, c_out)  # (M, C_out)
    gxp = col2im_add_(g2.new_zeros((n, hp, wp, c_in)), gemm(g2, weight_matrix(weight).t()), g)  # (N, Hp, Wp, C_in)
    return channels_last_copy(gxp[:, t : t + h, l : l + w])  # (N, C_in, H, W)
