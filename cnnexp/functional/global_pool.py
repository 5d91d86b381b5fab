"""Global average and max pooling over the spatial axes, with hand-written backward.

    global_avg_pool2d: y[n, c] = mean over (h, w) of x[n, c]      backward: dx = g / (H * W) on every pixel
    global_max_pool2d: y[n, c] = max over (h, w) of x[n, c]       backward: dx = g at the first arg-max
                                                                  (row-major; NaN wins, as torch's max)

These are Keras's GlobalAveragePooling2D / GlobalMaxPooling2D on channels-first tensors.
"""

from __future__ import annotations

from typing import Any

import torch


def _flat(x: torch.Tensor, op: str) -> torch.Tensor:
    if x.dim() != 4:
        raise ValueError(f"{op}: x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, H*W)


class GlobalAvgPool2dFunction(torch.autograd.Function):
    """(N, C, H, W) -> (N, C): the mean of each plane."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _flat(x, "global_avg_pool2d").sum(dim=2) / (x.shape[2] * x.shape[3])

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.in_shape = inputs[0].shape

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor | None:
        if not ctx.needs_input_grad[0]:
            return None
        n, c, h, w = ctx.in_shape
        return (grad_out / (h * w))[:, :, None, None].expand(n, c, h, w).contiguous()


class GlobalMaxPool2dFunction(torch.autograd.Function):
    """(N, C, H, W) -> (N, C): the max of each plane; the gradient goes to its first arg-max."""

    @staticmethod
    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.max(_flat(x, "global_max_pool2d"), dim=2)  # values, indices (N, C)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        _, idx = output
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(idx)
        ctx.in_shape = inputs[0].shape

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_idx: Any = None) -> torch.Tensor | None:
        if not ctx.needs_input_grad[0]:
            return None
        (idx,) = ctx.saved_tensors
        n, c, h, w = ctx.in_shape
        gx = grad_out.new_zeros((n, c, h * w)).scatter_(2, idx[:, :, None], grad_out[:, :, None])
        return gx.view(n, c, h, w)


def global_avg_pool2d(x: torch.Tensor, keepdims: bool = False) -> torch.Tensor:
    """Mean over H and W.

    Shape:
        x: `(N, C, H, W)` -> `(N, C)`, or `(N, C, 1, 1)` with keepdims.
    """
    y = GlobalAvgPool2dFunction.apply(x)
    return y[:, :, None, None] if keepdims else y


def global_max_pool2d(x: torch.Tensor, keepdims: bool = False) -> torch.Tensor:
    """Max over H and W.

    Shape:
        x: `(N, C, H, W)` -> `(N, C)`, or `(N, C, 1, 1)` with keepdims.
    """
    y, _ = GlobalMaxPool2dFunction.apply(x)
    return y[:, :, None, None] if keepdims else y
