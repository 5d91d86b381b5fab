"""torch's `groups` and unbatched `(C, H, W)` input for conv2d, with hand-written backward.

`conv2d` (conv2d.py) sends calls here when `groups != 1` or the input is unbatched:

- `groups == C_in` (depthwise, any multiplier): `depthwise_conv2d`, a sum over kernel taps;
- other groups: one batched GEMM over the groups. With G groups of `C_g = C_in / G` input and
  `C_og = C_out / G` output channels, on the padded NHWC input:

      cols[g] = every window of group g's channels as a row        # (G, N*H_out*W_out, kH*kW*C_g)
      y[g]    = cols[g] @ W[g]                                     # (G, M, C_og); W[g]: (kH*kW*C_g, C_og)
      dW[g]   = cols[g]^T @ grad[g];   dcols[g] = grad[g] @ W[g]^T, scattered back by col2im

- unbatched input: the batched conv on `x[None]`, then the batch axis is dropped.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ShapeError
from .autocast import autocast_operands
from .depthwise_conv2d import depthwise_conv2d
from .geometry import WindowGeometry, check_same_dtype, window_geometry
from .im2col import col2im_add_, nchw_view, nhwc_view, pad_nhwc, patches
from .padding import Padding
from .types import IntPair


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
