"""`model.compile`: ImageClassifier compiles its net in place (fullgraph) and trains it to the eager gradients."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from cnnexp.errors import ConfigError
from cnnexp.layers import Conv2D, Dense, Flatten, MaxPool2D
from cnnexp.lit import ImageClassifier
from cnnexp.models import KerasSequential


def tiny_net() -> KerasSequential:
    torch.manual_seed(0)
    return KerasSequential([Conv2D(4, 3, padding="same", activation="relu"), MaxPool2D(), Flatten(), Dense(None)],
                           (1, 8, 8), 3)


def grads(model: ImageClassifier, x, y) -> list[torch.Tensor]:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.slow
def test_compile_switch_compiles_the_net_and_keeps_the_eager_gradients_and_state_dict():
    adam = functools.partial(torch.optim.Adam)
    eager_net = tiny_net()
    eager = ImageClassifier(eager_net, adam)
    compiled = ImageClassifier(copy.deepcopy(eager_net), adam, compile="aot_eager")
    assert compiled.net._compiled_call_impl is not None and eager.net._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints stay interchangeable
    x, y = torch.rand(4, 1, 8, 8) * 255, torch.tensor([0, 1, 2, 1])
    for got, want in zip(grads(compiled, x, y), grads(eager, x, y)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_an_unknown_compile_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="model.compile=yes is not a torch.compile backend. Fix: .*aot_eager"):
        ImageClassifier(tiny_net(), functools.partial(torch.optim.Adam), compile="yes")
