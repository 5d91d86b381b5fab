"""ReLU after the pool (cnnexp.models.fusion): same outputs and gradients as layer by layer, hooks respected."""

from __future__ import annotations

import pytest
import torch

from cnnexp.layers import Conv2D, Dense, Flatten, MaxPool2D
from cnnexp.models import KerasSequential
from cnnexp.models.fusion import pool_first


def lecture_net(conv_impl: str, activation: str = "relu", padding: str = "valid") -> KerasSequential:
    torch.manual_seed(0)
    layers = [Conv2D(8, 3, padding="same", activation=activation), MaxPool2D(padding=padding),
              Conv2D(16, 3, padding="same", activation=activation), MaxPool2D(3, 2, padding=padding),
              Flatten(), Dense(None)]
    return KerasSequential(layers, (3, 11, 11), 4, conv_impl=conv_impl)


def outputs_and_grads(net: KerasSequential, x: torch.Tensor):
    net.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    y = net(x)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return y.detach(), x.grad, [p.grad for p in net.parameters()]


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("conv_impl", ["custom", "torch"])
def test_pool_first_matches_layer_by_layer(conv_impl, padding, monkeypatch):
    """Same outputs and gradients (exactly), and the fused pairs never call Conv2D.forward (the ReLU on the full map).

    Inputs are rounded so that pool windows hold ties and zeros, where the arg-max order matters."""
    net = lecture_net(conv_impl, padding=padding)
    x = (torch.randn(4, 3, 11, 11) * 2).round() / 2
    layer_by_layer = [layer.register_forward_hook(lambda *args: None) for layer in net.layers]
    reference = outputs_and_grads(net, x)
    for handle in layer_by_layer:
        handle.remove()
    calls = []
    monkeypatch.setattr(Conv2D, "forward", lambda self, x, _f=Conv2D.forward: calls.append(self) or _f(self, x))
    fused = outputs_and_grads(net, x)
    assert calls == []
    torch.testing.assert_close(fused[0], reference[0], rtol=0, atol=0)
    torch.testing.assert_close(fused[1], reference[1], rtol=0, atol=0)
    for got, want in zip(fused[2], reference[2]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_only_relu_conv_then_max_pool_pairs_and_hooks_see_the_layers_output():
    net = lecture_net("custom")
    assert [pool_first(net.layers, i) for i in range(len(net.layers))] == [True, False, True, False, False, False]
    assert not any(pool_first(lecture_net("custom", "tanh").layers, i) for i in range(6))  # only ReLU
    seen = []
    net.layers[0].register_forward_hook(lambda module, args, out: seen.append(out))
    assert not pool_first(net.layers, 0)
    net(torch.randn(2, 3, 11, 11))
    assert seen[0].min() >= 0  # the hook saw the Conv2D's activated output, not the pre-ReLU map
