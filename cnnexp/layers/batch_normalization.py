"""BatchNormalization: Keras's batch normalization on channels-first tensors, computed by
cnnexp.functional.batch_norm.

Keras and torch write the running-average update with opposite momenta:

    Keras:  moving = momentum * moving + (1 - momentum) * batch        (momentum 0.99 by default)
    torch:  running = (1 - momentum) * running + momentum * batch      (momentum 0.1 by default)

so the layer calls batch_norm with `momentum = 1 - keras_momentum`, and with the biased batch variance
(`unbiased=False`), which is what Keras stores in moving_variance (torch stores the unbiased one).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnexp.errors import ConfigError
from cnnexp.functional.batch_norm import batch_norm
from cnnexp.layers.base import Layer, Shape
from cnnexp.layers.checks import number
from cnnexp.layers.init import check_init


class BatchNormalization(Layer):
    """Normalize each channel by the batch's statistics in training and by the moving ones in eval.

    Args:
        momentum: Keras's momentum of the moving averages, in [0, 1] (torch's is 1 - momentum).
        epsilon: added to the variance.
        center: learn a shift beta (bias).
        scale: learn a scale gamma (weight).

    Shape:
        input (N, C, *) -> same shape; channels on axis 1 (Keras's axis=-1 on channels-last data).
        Parameters after build: weight = gamma (C,), bias = beta (C,); buffers moving_mean (C,),
        moving_variance (C,), which the summary counts as non-trainable parameters, as Keras does.

    Example:
        >>> BatchNormalization().build((16, 8, 8))
        (16, 8, 8)
    """

    keras_name = "batch_normalization"

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True, scale: bool = True) -> None:
        super().__init__()
        self.momentum = number("BatchNormalization", "momentum", momentum)
        if not 0.0 <= self.momentum <= 1.0:
            raise ConfigError(f"BatchNormalization: momentum must be in [0, 1] (Keras's convention, e.g. 0.99), "
                              f"got {momentum!r}")
        self.epsilon = number("BatchNormalization", "epsilon", epsilon)
        if self.epsilon <= 0:
            raise ConfigError(f"BatchNormalization: epsilon must be > 0, got {epsilon!r}")
        self.center, self.scale = bool(center), bool(scale)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 1:
            raise self.shape_error(input_shape, "expected at least a channel axis")
        return input_shape

    def create_parameters(self, input_shape: Shape) -> None:
        c = input_shape[0]
        self.register_parameter("weight", nn.Parameter(torch.empty(c)) if self.scale else None)
        self.register_parameter("bias", nn.Parameter(torch.empty(c)) if self.center else None)
        self.register_buffer("moving_mean", torch.empty(c))
        self.register_buffer("moving_variance", torch.empty(c))

    @torch.no_grad()
    def reset_parameters(self, init: str | None = None) -> None:
        """gamma = 1, beta = 0, moving mean 0, moving variance 1 (the same under every init scheme)."""
        if init is not None:
            self.init = check_init(init)
        if not self.built:
            return
        if self.weight is not None:
            self.weight.fill_(1.0)
        if self.bias is not None:
            self.bias.zero_()
        self.moving_mean.zero_()
        self.moving_variance.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, *) -> (N, C, *)."""
        self.check_built()
        return batch_norm(x, self.moving_mean, self.moving_variance, self.weight, self.bias, training=self.training,
                          momentum=1.0 - self.momentum, eps=self.epsilon, unbiased=False)

    def extra_repr(self) -> str:
        c = self.input_shape[0] if self.input_shape else "?"
        return f"{c}, momentum={self.momentum}, epsilon={self.epsilon}, center={self.center}, scale={self.scale}"
