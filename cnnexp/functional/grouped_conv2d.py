"""torch's `groups` and unbatched `(C, H, W)` input for conv2d, with hand-written backward.

`conv2d` (conv2d.py) sends calls here when `groups != 1` or the input is unbatched:

- `groups == C_in` (depthwise, any multiplier): `depthwise_conv2d`, a sum over kernel taps;
- other groups: one batched GEMM over the groups. With G groups of `C_g = C_in / G` input and
  `C_og = C_out / G` output channels, on the padded NHWC input:

      cols[g] = every window of group g's channels as a row        # (G, N*H_out*W_out, kH*kW*C_g)
      y[g]    = cols[g] @ W[g]                                     # (G, M, C_og); W[g]: (kH*kW*C_g, C_og)
      dW[g]   = cols[g]^T @ grad[g];   dcols[g] = grad[g] @ W[g]^T, scattered back by col2im

- unbatched input: the batched conv on `x[None]`, then the batch axis is dropped.

Depthwise (`groups = C_in`): each input channel c has its own `m` (depth multiplier) kernels; output channel
`c * m + k` is

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

from ..errors import ShapeError
from .geometry import IntPair, Padding, WindowGeometry, autocast_operands, check_same_dtype, window_geometry
from .im2col import col2im_add_, nchw_view, nhwc_view, pad_nhwc, patches
from .pooling import window_taps


# --- depthwise: a sum over kernel taps -------------------------------------------------------------------------


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
    """Depthwise conv of checked operands (see `conv2d_grouped` for the public entry).

    Shape:
        x `(N, C_in, H, W)`, weight `(C_in * m, 1, kH, kW)`, bias `(C_in * m,)` -> `(N, C_in * m, H_out, W_out)`.
    """
    y, _ = DepthwiseConv2dFunction.apply(x, weight, bias, geom)
    return y


# --- other groups: one batched GEMM ----------------------------------------------------------------------------


def _group_cols(xp: torch.Tensor, g: WindowGeometry, groups: int) -> torch.Tensor:
    """Padded NHWC `(N, Hp, Wp, C_in)` -> `(G, N*H_out*W_out, kH*kW*C_g)` (a copy)."""
    n, _, _, c = xp.shape
    (kh, kw), (ho, wo) = g.kernel, g.out_hw
    p = patches(xp, g).reshape(n, ho, wo, kh, kw, groups, c // groups)
    return p.permute(5, 0, 1, 2, 3, 4, 6).reshape(groups, n * ho * wo, kh * kw * (c // groups))


def _group_weights(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """`(C_out, C_g, kH, kW)` -> `(G, kH*kW*C_g, C_og)`, rows ordered like `_group_cols`' columns."""
    c_out, cg, kh, kw = weight.shape
    return weight.view(groups, c_out // groups, cg, kh, kw).permute(0, 3, 4, 2, 1).reshape(groups, -1, c_out // groups)


class GroupedConv2dFunction(torch.autograd.Function):
    """y = grouped conv2d(x, weight, bias): one batched GEMM over the groups (see the module docstring)."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geom: WindowGeometry,
                groups: int) -> tuple[torch.Tensor, torch.Tensor]:
        n, c_out = x.shape[0], weight.shape[0]
        ho, wo = geom.out_hw
        xp = pad_nhwc(x, geom.pads)  # (N, Hp, Wp, C_in)
        y = torch.bmm(_group_cols(xp, geom, groups), _group_weights(weight, groups))  # (G, M, C_og)
        y = y.permute(1, 0, 2).reshape(n, ho, wo, c_out)  # (N, H_out, W_out, C_out), channel = g * C_og + k
        if bias is not None:
            y = y + bias
        return nchw_view(y), xp

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, weight, bias, geom, groups = inputs
        _, xp = output
        ctx.mark_non_differentiable(xp)
        ctx.save_for_backward(xp, weight)
        ctx.geom, ctx.groups, ctx.x_shape, ctx.has_bias = geom, groups, x.shape, bias is not None

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_xp: Any = None) -> tuple[torch.Tensor | None, ...]:
        xp, weight = ctx.saved_tensors
        g: WindowGeometry = ctx.geom
        groups = ctx.groups
        n, c_in, h, w = ctx.x_shape
        c_out, cg, kh, kw = weight.shape
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g2 = nhwc_view(grad_out).reshape(-1, groups, c_out // groups).permute(1, 0, 2)  # (G, M, C_og)
        grad_x = grad_w = grad_b = None
        if need_b and ctx.has_bias:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        if need_w:
            gw = torch.bmm(_group_cols(xp, g, groups).transpose(1, 2), g2)  # (G, kH*kW*C_g, C_og)
            grad_w = gw.view(groups, kh, kw, cg, c_out // groups).permute(0, 4, 3, 1, 2).reshape(c_out, cg, kh, kw)
        if need_x:
            ho, wo = g.out_hw
            dcols = torch.bmm(g2, _group_weights(weight, groups).transpose(1, 2))  # (G, M, kH*kW*C_g)
            dcols = dcols.view(groups, n, ho, wo, kh, kw, cg).permute(1, 2, 3, 4, 5, 0, 6).reshape(n * ho * wo, -1)
            gxp = col2im_add_(xp.new_zeros(xp.shape), dcols, g)
            t, _, l, _ = g.pads
            grad_x = nchw_view(gxp[:, t : t + h, l : l + w])
        return grad_x, grad_w, grad_b, None, None


def _check(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int) -> None:
    """Ranks, groups and channel counts of a grouped conv (torch's rules), as ShapeErrors."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv2d: groups must be an integer >= 1, got {groups!r}")
    if x.dim() != 4 or weight.dim() != 4:
        raise ShapeError(f"conv2d: x must be (N, C_in, H, W) or (C_in, H, W) and weight (C_out, C_in / groups, "
                         f"kH, kW), got x {tuple(x.shape)}, weight {tuple(weight.shape)}")
    c_in, c_out = x.shape[1], weight.shape[0]
    if c_in % groups or c_out % groups or weight.shape[1] * groups != c_in:
        raise ShapeError(f"conv2d: with groups={groups}, C_in={c_in} and C_out={c_out} must be multiples of groups "
                         f"and weight.shape[1] must be C_in / groups, got weight {tuple(weight.shape)}; fix groups "
                         f"or the weight shape")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ShapeError(f"conv2d: bias must have shape ({c_out},) = (C_out,), got {tuple(bias.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"conv2d: {name} is on {t.device} but x is on {x.device}; move them to one device")


def conv2d_grouped(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """conv2d with torch's `groups` and unbatched input (the rest as `cnnexp.functional.conv2d`).

    Shape:
        x: `(N, C_in, H, W)` or `(C_in, H, W)`; weight: `(C_out, C_in / groups, kH, kW)`; bias: `(C_out,)`.
        Output: `(N, C_out, H_out, W_out)` (or `(C_out, H_out, W_out)`); output channel `g * C_out/groups + k`
        sees input channels `g * C_in/groups ...` (torch's order; for depthwise, `c * m + k` sees channel c).
    """
    if x.dim() == 3:
        from .conv2d import conv2d  # the public entry, which sends the batched call back here if grouped

        return conv2d(x.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    _check(x, weight, bias, groups)
    geom = window_geometry((int(x.shape[2]), int(x.shape[3])), weight.shape[2:], stride, padding, dilation, "conv2d")
    (x, weight, bias), autocast_off = autocast_operands(x, weight, bias)
    check_same_dtype("conv2d", x, weight=weight, bias=bias)
    with autocast_off:
        if groups == x.shape[1]:
            return depthwise_conv2d(x, weight, bias, geom)
        y, _ = GroupedConv2dFunction.apply(x, weight, bias, geom, groups)
    return y
