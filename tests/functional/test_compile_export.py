"""torch.compile (fullgraph, aot_eager and inductor) and torch.export of networks built on cnnexp's custom conv and
pool: one graph, the eager outputs and gradients, and an exported program with a dynamic batch size."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from cnnexp.layers import Conv2D, Dense, Flatten, MaxPool2D
from cnnexp.models import KerasSequential

from tests.models.test_sequential import lecture_layers


def lecture_net(hw: int = 16) -> KerasSequential:
    torch.manual_seed(0)
    return KerasSequential(lecture_layers(), (3, hw, hw), 5)


def outputs_and_grads(net, x):
    net.zero_grad()
    y = net(x)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return y.detach(), [p.grad.clone() for p in net.parameters()]


def assert_compiled_matches_eager(net, backend: str, x: torch.Tensor) -> None:
    torch._dynamo.reset()
    want_y, want_grads = outputs_and_grads(net, x)
    compiled = torch.compile(net, backend=backend, fullgraph=True)  # fullgraph: any graph break raises
    got_y, got_grads = outputs_and_grads(compiled, x)
    torch.testing.assert_close(got_y, want_y, rtol=1e-5, atol=1e-5)
    for got, want in zip(got_grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_lecture_model_compiles_to_one_graph_with_aot_eager():
    counter = CompileCounterWithBackend("aot_eager")
    net = lecture_net()
    x = torch.rand(2, 3, 16, 16) * 255
    assert_compiled_matches_eager(net, counter, x)
    assert counter.frame_count == 1  # one graph for the whole model


@pytest.mark.slow
def test_inductor_matches_eager_on_a_conv_pool_net():
    """Inductor compiles slowly on the CPU, so a net with one custom conv and one custom pool."""
    torch.manual_seed(0)
    net = KerasSequential([Conv2D(4, 3, padding="same", activation="relu"), MaxPool2D(), Flatten(), Dense(None)],
                          (3, 8, 8), 3)
    assert_compiled_matches_eager(net, "inductor", torch.rand(2, 3, 8, 8))


def test_export_with_dynamic_batch_matches_eager():
    net = lecture_net().eval()
    program = torch.export.export(net, (torch.rand(2, 3, 16, 16) * 255,),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    called = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert {"cnnexp.conv2d.default", "cnnexp.max_pool2d.default"} <= called
    assert not any("convolution" in name or "aten.max_pool" in name for name in called), called
    for n in (1, 5):
        x = torch.rand(n, 3, 16, 16) * 255
        torch.testing.assert_close(program.module()(x), net(x), rtol=1e-5, atol=1e-5)
