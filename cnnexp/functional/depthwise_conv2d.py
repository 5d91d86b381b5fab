"""Depthwise 2-D convolution (torch's `groups = C_in`), a sum over kernel taps, with a hand-written backward.

Each input channel c has its own `m` (depth multiplier) kernels; output channel `c * m + k` is

    y[:, c*m + k] = sum over taps (i, j) of  w[c*m + k, 0, i, j] * xp[:, c, tap (i, j)]

where tap `(i, j)` of every window is one strided view of the zero-padded input (`window_taps`), so the
forward is `kH * kW` multiply-adds over the whole output, with no per-channel Python loop. Backward:

    dx[tap (i, j)] += sum_k g[:, c*m + k] * w[c*m + k, 0, i, j]            (then the padding is cropped)
    dw[c*m + k, 0, i, j] = sum over (n, h, w) of g[:, c*m + k] * xp[:, c, tap (i, j)]
    dbias = sum of g over (n, h, w)

The padded input is kept in NHWC memory (`pad_nhwc`), the layout the custom conv's outputs already have,
so every view and multiply-add streams over contiguous channels.
"""

from __future__ import annotations

from typing import Any

import torch

from .geometry import WindowGeometry
from .im2col import nchw_view, nhwc_view, pad_nhwc
from .pool_window import window_taps


def _tap_weights(weight: torch.Tensor, c_in: int) -> torch.Tensor:
    """`(C_in * m, 1, kH, kW)` -> `(kH * kW, m, 1, C_in, 1, 1)`: tap t's weights for multiplier k, contiguous over
    the channels (a strided weight vector keeps the multiply-adds from vectorizing), broadcast over
    `(N, C_in, H_out, W_out)`."""
    kh, kw = weight.shape[2:]
    return weight.reshape(c_in, -1, kh * kw).permute(2, 1, 0).contiguous()[:, :, None, :, None, None]


def _channels_last(shape: tuple[int, int, int, int], like: torch.Tensor) -> torch.Tensor:
    """An empty `(N, C, H, W)` tensor with channels-last strides."""
    n, c, h, w = shape
    return nchw_view(like.new_empty((n, h, w, c)))


class DepthwiseConv2dFunction(torch.autograd.Function):
    """y = depthwise_conv2d(x, weight, bias); weight `(C_in * m, 1, kH, kW)`.

    Every operand is an `(N, C, H, W)` view of NHWC memory, so each multiply-add streams over contiguous
    channels; a multiplier m > 1 runs the taps once per k and interleaves the m results at the end.
    """

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geom: WindowGeometry):
        n, c = x.shape[:2]
        ho, wo = geom.out_hw
        xp = nchw_view(pad_nhwc(x, geom.pads))  # (N, C_in, Hp, Wp), channels-last strides
        taps = window_taps(xp, geom)  # each (N, C_in, H_out, W_out)
        tw = _tap_weights(weight, c)  # (T, m, 1, C_in, 1, 1)
        m = tw.shape[1]
        outs = []
        for k in range(m):
            yk = torch.mul(taps[0], tw[0, k], out=_channels_last((n, c, ho, wo), x))
            for tap, wt in zip(taps[1:], tw[1:, k]):
                yk.addcmul_(tap, wt)
            outs.append(yk)
        if m == 1:
            y = outs[0]
        else:  # output channel c * m + k: interleave
            y5 = x.new_empty((n, ho, wo, c, m))
            for k, yk in enumerate(outs):
                y5[..., k] = nhwc_view(yk)
            y = nchw_view(y5.view(n, ho, wo, c * m))
        if bias is not None:
            y.add_(bias.view(1, -1, 1, 1))
        return y, xp

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, weight, bias, geom = inputs
        _, xp = output
        ctx.mark_non_differentiable(xp)
        ctx.save_for_backward(xp, weight)
        ctx.geom, ctx.x_shape, ctx.has_bias = geom, x.shape, bias is not None

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_xp: Any = None) -> tuple[torch.Tensor | None, ...]:
        xp, weight = ctx.saved_tensors
        g: WindowGeometry = ctx.geom
        n, c, h, w = ctx.x_shape
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        ho, wo = g.out_hw
        m = weight.shape[0] // c
        gh = nhwc_view(grad_out).contiguous().view(n, ho, wo, c, m)  # NHWC memory, like the operands
        gks = [nchw_view(gh[..., k] if m == 1 else gh[..., k].contiguous()) for k in range(m)]  # (N, C, Ho, Wo)
        grad_x = grad_w = grad_b = None
        if need_b and ctx.has_bias:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        if need_w:
            buf = _channels_last((n, c, ho, wo), xp)  # one product buffer, reused
            taps = window_taps(xp, g)
            gw = torch.stack([torch.stack([torch.mul(gk, tap, out=buf).sum(dim=(0, 2, 3)) for tap in taps])
                              for gk in gks])  # (m, T, C)
            grad_w = gw.permute(2, 0, 1).reshape(c * m, 1, *g.kernel)
        if need_x:
            gxp = nchw_view(xp.new_zeros((n, *g.padded_hw, c)))  # (N, C_in, Hp, Wp), channels-last strides
            tw = _tap_weights(weight, c)
            for gtap, wts in zip(window_taps(gxp, g), tw):
                for gk, wt in zip(gks, wts):
                    gtap.addcmul_(gk, wt)
            t, _, l, _ = g.pads
            grad_x = gxp[:, :, t : t + h, l : l + w]
        return grad_x, grad_w, grad_b, None


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geom: WindowGeometry):
    """Depthwise conv of checked operands (see `grouped_conv2d.conv2d_grouped` for the public entry).

    Shape:
        x `(N, C_in, H, W)`, weight `(C_in * m, 1, kH, kW)`, bias `(C_in * m,)` -> `(N, C_in * m, H_out, W_out)`.
    """
    y, _ = DepthwiseConv2dFunction.apply(x, weight, bias, geom)
    return y
