"""Activation functions by their Keras names: `get("relu")` returns a function of a tensor.

Keras parity notes: `softmax` and `log_softmax` act on dim 1, which is the channel axis of (N, C, H, W)
and the feature axis of (N, F) (Keras's last axis in channels-last data); `leaky_relu` uses Keras 3's
negative slope 0.2 (PyTorch's default is 0.01); `gelu` is the exact (erf) form, Keras's default.

Example:
    >>> get("relu")(torch.tensor([-1.0, 2.0]))  # doctest: +NORMALIZE_WHITESPACE
    tensor([0., 2.])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from cnnexp.errors import ConfigError

ActivationFn = Callable[[torch.Tensor], torch.Tensor]


def linear(x: torch.Tensor) -> torch.Tensor:
    """The identity (Keras's `linear`, also what `activation=None` means)."""
    return x


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 (channels / features)."""
    return torch.softmax(x, dim=1)


def log_softmax(x: torch.Tensor) -> torch.Tensor:
    """Log-softmax over dim 1 (channels / features)."""
    return torch.log_softmax(x, dim=1)


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with Keras 3's default negative slope 0.2."""
    return F.leaky_relu(x, negative_slope=0.2)


def relu6(x: torch.Tensor) -> torch.Tensor:
    """min(max(x, 0), 6)."""
    return F.relu6(x)


def exponential(x: torch.Tensor) -> torch.Tensor:
    """exp(x)."""
    return torch.exp(x)


ACTIVATIONS: dict[str, ActivationFn] = {
    "linear": linear,
    "relu": torch.relu,
    "relu6": relu6,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "gelu": F.gelu,
    "elu": F.elu,
    "selu": F.selu,
    "leaky_relu": leaky_relu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "silu": F.silu,
    "swish": F.silu,
    "mish": F.mish,
    "hard_sigmoid": F.hardsigmoid,
    "hard_silu": F.hardswish,
    "hard_swish": F.hardswish,
    "exponential": exponential,
}


def get(name: str | None) -> ActivationFn:
    """Return the activation function called `name` (None or "linear" is the identity).

    Raises:
        ConfigError: for an unknown name, listing the known ones.
    """
    key = "linear" if name is None else name
    if not isinstance(key, str) or key.lower() not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)} or null")
    return ACTIVATIONS[key.lower()]


def canonical_name(name: str | None) -> str:
    """The lower-case name `get` resolves (None -> "linear"), validated."""
    get(name)
    return "linear" if name is None else name.lower()
