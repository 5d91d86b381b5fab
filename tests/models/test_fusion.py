"""ReLU after the pool (cnnexp.models.fusion): same outputs and gradients as layer by layer, hooks respected."""

from __future__ import annotations

import pytest
import torch

from cnnexp.layers import Conv2D, Dense, Flatten, MaxPool2D, Rescaling
from cnnexp.models import KerasSequential
from cnnexp.models.fusion import pool_first, scale_folds


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
    The custom conv's first pair also runs as one conv + pool op: its bias gradient sums the pooled gradient instead
    of the full map's (the same values without the zeros), so it may differ in float rounding.

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
    for (name, _), got, want in zip(net.named_parameters(), fused[2], reference[2]):
        exact = not (conv_impl == "custom" and name.endswith("bias"))
        torch.testing.assert_close(got, want, rtol=0 if exact else 1e-6, atol=0 if exact else 1e-6)


def test_only_relu_conv_then_max_pool_pairs_and_hooks_see_the_layers_output():
    net = lecture_net("custom")
    assert [pool_first(net.layers, i) for i in range(len(net.layers))] == [True, False, True, False, False, False]
    assert not any(pool_first(lecture_net("custom", "tanh").layers, i) for i in range(6))  # only ReLU
    seen = []
    net.layers[0].register_forward_hook(lambda module, args, out: seen.append(out))
    assert not pool_first(net.layers, 0)
    net(torch.randn(2, 3, 11, 11))
    assert seen[0].min() >= 0  # the hook saw the Conv2D's activated output, not the pre-ReLU map


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_rescaling_folds_into_the_next_conv(padding_mode, monkeypatch):
    """Rescaling(1/255) before a Conv2D scales the weights instead of the images: same outputs and gradients
    (float rounding), Rescaling.forward never runs; with an offset it runs as itself."""
    torch.manual_seed(0)
    layers = [Rescaling(1 / 255), Conv2D(8, 3, padding="same", activation="relu", padding_mode=padding_mode),
              MaxPool2D(), Conv2D(4, 3, activation="tanh"), Flatten(), Dense(None)]
    net = KerasSequential(layers, (3, 10, 10), 3)
    x = torch.randint(0, 256, (2, 3, 10, 10)).float()
    handle = net.layers[0].register_forward_hook(lambda *args: None)
    reference = outputs_and_grads(net, x)
    handle.remove()
    calls = []
    monkeypatch.setattr(Rescaling, "forward", lambda self, x, _f=Rescaling.forward: calls.append(1) or _f(self, x))
    assert scale_folds(net.layers, 0) and not scale_folds(net.layers, 1)
    folded = outputs_and_grads(net, x)
    assert calls == []
    for got, want in zip([folded[0], folded[1], *folded[2]], [reference[0], reference[1], *reference[2]]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    net.layers[0].offset = -1.0
    assert not scale_folds(net.layers, 0)
    net(x)
    assert calls == [1]


def test_conv_and_pool_run_as_one_op_only_where_it_applies(monkeypatch):
    """The custom ReLU conv + 2x2 'valid' pool runs as `conv2d_max_pool`; a pool whose windows overlap, a 'same'
    pool, the torch conv, float64 and switched-off kernels run the pair apart."""
    from cnnexp.functional import kernels
    from cnnexp.models import fusion

    if kernels.library() is None:
        pytest.skip("the compiled kernels are off or did not build")
    calls = []
    fused_op = fusion.conv2d_max_pool
    monkeypatch.setattr(fusion, "conv2d_max_pool", lambda *a, **kw: calls.append(kw) or fused_op(*a, **kw))
    x = torch.randn(2, 3, 11, 11)
    lecture_net("custom")(x)
    assert calls == [{"relu": True}]  # the first pair, ReLU'd in the op; the second pool's windows overlap
    for net, batch in [(lecture_net("custom", padding="same"), x), (lecture_net("torch"), x),
                       (lecture_net("custom").double(), x.double())]:
        net(batch)
    with kernels.disabled():
        lecture_net("custom")(x)
    assert calls == [{"relu": True}]
