"""Weight initialization schemes shared by every layer that owns a kernel and a bias.

- "keras": glorot_uniform kernels, U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), and zero biases.
  Fans as Keras computes them from its kernel (kH, kW, C_in, C_out): fan_in = C_in * kH * kW,
  fan_out = C_out * kH * kW; a Dense kernel (in, out) has fan_in = in, fan_out = out.
- "torch": PyTorch's nn.Conv2d / nn.Linear defaults: kaiming_uniform(a=sqrt(5)) kernels, which is
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnexp.errors import ConfigError

INIT_SCHEMES = ("keras", "torch")


def check_init(name: object) -> str:
    """Return `name` if it is a known scheme, else raise ConfigError listing the schemes."""
    if name not in INIT_SCHEMES:
        raise ConfigError(f"unknown init {name!r}; choose one of {list(INIT_SCHEMES)}")
    return str(name)


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a cnnexp kernel: conv (C_out, C_in, kH, kW) or dense (out, in).

    These equal Keras's fans for the same kernel in Keras's layout.
    """
    receptive = math.prod(weight.shape[2:])  # kH * kW, or 1 for dense
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@torch.no_grad()
def init_kernel_and_bias_(weight: torch.Tensor, bias: torch.Tensor | None, scheme: str) -> None:
    """Fill `weight` and `bias` in place with the `scheme` ("keras" or "torch") distribution.

    Shape:
        weight: (C_out, C_in, kH, kW) or (out, in); bias: (C_out,) or (out,)
    """
    fan_in, fan_out = fans(weight)
    if check_init(scheme) == "keras":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        weight.uniform_(-limit, limit)
        if bias is not None:
            bias.zero_()
    else:
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        if bias is not None:
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            bias.uniform_(-bound, bound)
