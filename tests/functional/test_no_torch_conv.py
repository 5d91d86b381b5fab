"""The custom conv never dispatches a torch convolution op, and its backward is the hand-written one."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cnnexp.functional import conv2d, conv2d_torch


class OpRecorder(TorchDispatchMode):
    """Records the name of every aten op dispatched while active."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


def conv_ops_dispatched(conv) -> tuple[list[str], list[str]]:
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    with OpRecorder() as rec:
        y = conv(x, w, b, stride=2, padding="same")
        y.square().sum().backward()
    return rec.ops, [op for op in rec.ops if "conv" in op.lower()]


def test_custom_conv_dispatches_no_convolution_op():
    ops, conv_ops = conv_ops_dispatched(conv2d)
    assert ops, "the recorder saw nothing"
    assert conv_ops == []
    assert any(op in ("mm", "addmm", "_linear_pointwise") for op in ops)  # it is GEMMs


def test_recorder_does_see_torch_convolutions():
    _, conv_ops = conv_ops_dispatched(conv2d_torch)
    assert any(op.startswith("convolution") for op in conv_ops), conv_ops


def test_backward_graph_is_the_custom_function_only():
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, requires_grad=True)
    y = conv2d(x, w, padding="same")
    assert "Conv2dFunction" in type(y.grad_fn).__name__
    parents = [fn for fn, _ in y.grad_fn.next_functions if fn is not None]
    assert parents and all(type(fn).__name__ == "AccumulateGrad" for fn in parents)
