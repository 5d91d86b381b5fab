"""Activations by Keras name, checked against PyTorch's definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnexp.errors import ConfigError
from cnnexp.layers import Activation, activations

X = torch.linspace(-4, 4, 17).reshape(1, 17)  # (N, F)

# (name, reference written independently of activations.py)
REFERENCES = [
    (None, lambda x: x),
    ("linear", lambda x: x),
    ("relu", lambda x: x.clamp(min=0)),
    ("relu6", lambda x: x.clamp(0, 6)),
    ("sigmoid", lambda x: 1 / (1 + torch.exp(-x))),
    ("tanh", lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))),
    ("softmax", lambda x: torch.exp(x) / torch.exp(x).sum(dim=1, keepdim=True)),
    ("log_softmax", lambda x: x - torch.log(torch.exp(x).sum(dim=1, keepdim=True))),
    ("gelu", lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))),  # Keras's default: exact, not tanh
    ("elu", lambda x: torch.where(x > 0, x, torch.exp(x) - 1)),
    ("selu", lambda x: 1.0507009873554805 * torch.where(x > 0, x, 1.6732632423543772 * (torch.exp(x) - 1))),
    ("leaky_relu", lambda x: torch.where(x > 0, x, 0.2 * x)),  # Keras 3's slope, not PyTorch's 0.01
    ("softplus", lambda x: torch.log1p(torch.exp(x))),
    ("softsign", lambda x: x / (1 + x.abs())),
    ("swish", lambda x: x * torch.sigmoid(x)),
    ("silu", lambda x: x * torch.sigmoid(x)),
    ("mish", lambda x: x * torch.tanh(torch.log1p(torch.exp(x)))),
    ("hard_sigmoid", lambda x: (x / 6 + 0.5).clamp(0, 1)),
    ("hard_silu", lambda x: x * (x / 6 + 0.5).clamp(0, 1)),
    ("exponential", torch.exp),
]


def test_every_registered_name_has_a_reference():
    assert {name for name, _ in REFERENCES if name} >= set(activations.ACTIVATIONS) - {"hard_swish"}


@pytest.mark.parametrize("name, reference", REFERENCES)
def test_activation_matches_its_definition(name, reference):
    torch.testing.assert_close(activations.get(name)(X), reference(X), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(Activation(name)(X), reference(X), rtol=1e-5, atol=1e-6)


def test_softmax_acts_on_the_channel_axis_of_images():
    x = torch.randn(2, 3, 4, 5)  # (N, C, H, W): Keras's channels-last softmax is over C
    torch.testing.assert_close(activations.get("softmax")(x).sum(dim=1), torch.ones(2, 4, 5))


def test_names_are_case_insensitive_and_unknown_names_list_the_choices():
    assert activations.get("ReLU") is activations.get("relu")
    with pytest.raises(ConfigError, match="choose one of") as err:
        activations.get("rectifier")
    assert "'relu'" in str(err.value) and "'gelu'" in str(err.value)
    assert F.gelu is activations.get("gelu")
