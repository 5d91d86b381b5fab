"""Batch normalization with torch's contract (`F.batch_norm`), written out with a hand-written backward.

Per channel c (dim 1 of an `(N, C, *)` input), with the statistics taken over every other axis, `m` values:

    training:  mu = mean(x),  var = mean((x - mu)^2)   (biased, used to normalize)
               running_mean <- (1 - momentum) * running_mean + momentum * mu
               running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)   (unbiased)
    eval:      mu, var = running_mean, running_var
    y = (x - mu) / sqrt(var + eps) * weight + bias

Backward, with xhat = (x - mu) * invstd and g = dL/dy:

    dbias = sum(g),  dweight = sum(g * xhat)
    training: dx = weight * invstd * (g - mean(g) - xhat * mean(g * xhat))   (mu and var depend on x)
    eval:     dx = weight * invstd * g;  drunning_mean = -sum(weight * invstd * g);
              drunning_var = -sum(g * weight * (x - mu)) * invstd^3 / 2

Keras's BatchNormalization keeps `moving = momentum_k * moving + (1 - momentum_k) * batch`, i.e. torch's
`momentum = 1 - momentum_k`, and stores the *biased* batch variance: `unbiased=False` does that.
"""

from __future__ import annotations

from typing import Any

import torch


def _shape_c(x: torch.Tensor) -> tuple[int, ...]:
    """The shape that broadcasts a `(C,)` vector along dim 1 of x."""
    return (1, -1) + (1,) * (x.dim() - 2)


def _dims(x: torch.Tensor) -> tuple[int, ...]:
    """Every axis but the channel axis 1."""
    return (0,) + tuple(range(2, x.dim()))


class BatchNormFunction(torch.autograd.Function):
    """y = batch_norm(x, ...); updates the running statistics in place when training."""

    @staticmethod
    def forward(x, running_mean, running_var, weight, bias, training, momentum, eps, unbiased):
        dims, sc = _dims(x), _shape_c(x)
        if training:
            m = x.numel() // x.shape[1]
            mu = x.mean(dim=dims)  # (C,)
            var = (x - mu.view(sc)).square().mean(dim=dims)  # (C,) biased
            with torch.no_grad():
                if running_mean is not None:
                    running_mean.mul_(1 - momentum).add_(mu.to(running_mean.dtype), alpha=momentum)
                if running_var is not None:
                    stat = var * (m / (m - 1)) if unbiased else var
                    running_var.mul_(1 - momentum).add_(stat.to(running_var.dtype), alpha=momentum)
        else:
            mu, var = running_mean.clone(), running_var  # a clone: an output must not be an input
        invstd = (var + eps).rsqrt()  # (C,)
        y = (x - mu.view(sc)) * invstd.view(sc)
        if weight is not None:
            y = y * weight.view(sc)
        if bias is not None:
            y = y + bias.view(sc)
        return y, mu, invstd

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, _, _, weight, *_ = inputs
        _, mu, invstd = output
        ctx.mark_non_differentiable(mu, invstd)
        ctx.save_for_backward(x, weight, mu, invstd)
        ctx.training = inputs[5]

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, *_unused: Any) -> tuple[torch.Tensor | None, ...]:
        x, weight, mu, invstd = ctx.saved_tensors
        need_x, need_rm, need_rv, need_w, need_b = ctx.needs_input_grad[:5]
        dims, sc = _dims(x), _shape_c(x)
        xhat = (x - mu.view(sc)) * invstd.view(sc)
        scale = invstd if weight is None else invstd * weight  # (C,)
        grad_x = grad_rm = grad_rv = grad_w = grad_b = None
        if need_w:
            grad_w = (grad_out * xhat).sum(dim=dims)
        if need_b:
            grad_b = grad_out.sum(dim=dims)
        if ctx.training:
            if need_x:
                gmean = grad_out.mean(dim=dims).view(sc)
                gxmean = (grad_out * xhat).mean(dim=dims).view(sc)
                grad_x = (grad_out - gmean - xhat * gxmean) * scale.view(sc)
        else:
            if need_x:
                grad_x = grad_out * scale.view(sc)
            if need_rm:
                grad_rm = -(grad_out.sum(dim=dims) * scale)
            if need_rv:
                grad_rv = -0.5 * (grad_out * xhat).sum(dim=dims) * scale * invstd  # xhat holds one invstd
        return grad_x, grad_rm, grad_rv, grad_w, grad_b, None, None, None, None


def batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    unbiased: bool = True,
) -> torch.Tensor:
    """`torch.nn.functional.batch_norm` from scratch (channel axis 1), torch's argument names.

    Args:
        input: `(N, C, *)`.
        running_mean, running_var: `(C,)` buffers, updated in place when training (None: not tracked;
            then eval mode is impossible).
        weight, bias: `(C,)` affine parameters, or None.
        training: normalize with the batch's statistics (and update the running ones).
        momentum: weight of the new batch in the running averages (torch's convention).
        eps: added to the variance.
        unbiased: (keyword only, not in torch) False stores the biased batch variance, as Keras does.

    Shape:
        Output like `input`.

    Raises:
        ValueError: eval mode without running statistics, or training with one value per channel.
    """
    if input.dim() < 2:
        if input.numel() == 0:
            return input.clone()  # torch returns an empty tensor for an empty input
        raise ValueError(f"batch_norm: input must be (N, C, *), got shape {tuple(input.shape)}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: eval mode (training=False) needs running_mean and running_var; "
                         "pass them or training=True")
    if training and input.numel() // max(input.shape[1], 1) <= 1:
        raise ValueError(f"batch_norm: training needs more than one value per channel, got input shape "
                         f"{tuple(input.shape)}; use a batch larger than 1 or eval mode")
    y, _, _ = BatchNormFunction.apply(input, running_mean, running_var, weight, bias, bool(training),
                                      float(momentum), float(eps), bool(unbiased))
    return y
