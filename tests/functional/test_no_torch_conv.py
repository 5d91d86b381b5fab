"""The custom conv and pool never dispatch a torch convolution or pooling op, and their backward is the hand-written
one (the `cnnexp::` custom ops, see cnnexp/functional/conv2d.py and max_pool2d.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from cnnexp.functional import conv2d, conv2d_torch, max_pool2d

CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)


class OpRecorder(TorchDispatchMode):
    """Records `namespace::name` of every op dispatched while active, also the ops *inside* cnnexp's custom ops.

    A mode does not see the ops that run inside an op it intercepted; for a `cnnexp::` op the recorder therefore
    calls the op's CPU kernel itself, with the mode active again, so that everything the kernel dispatches is
    recorded too.
    """

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(f"{func.namespace}::{func.overloadpacket.__name__}")
        if func.namespace == "cnnexp":
            with self:
                return func.redispatch(CPU, *args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


def ops_dispatched(conv, pool=None) -> list[str]:
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    w2 = torch.randn(16, 4, 3, 3, requires_grad=True)
    with OpRecorder() as rec:
        y = conv(x, w, b, stride=2, padding="same")  # the strided (im2col) path
        y = conv(y, w2, None, padding="same")  # stride 1, 4 -> 16 channels: the grid path (compiled kernel)
        y = pool(y, 2) if pool is not None else y
        y.square().sum().backward()
    return rec.ops


def torch_conv_or_pool(ops: list[str]) -> list[str]:
    return [op for op in ops if op.startswith("aten::") and ("conv" in op or "pool" in op)]


def test_custom_conv_and_pool_dispatch_no_torch_convolution_or_pooling_op():
    ops = ops_dispatched(conv2d, max_pool2d)
    assert torch_conv_or_pool(ops) == []
    for op in ("conv2d", "conv2d_input_grad", "conv2d_weight_grad", "max_pool2d", "max_pool2d_backward"):
        assert f"cnnexp::{op}" in ops, ops  # the custom ops ran, forward and the hand-written backward
    assert any(op in ("aten::mm", "aten::addmm", "mkldnn::_linear_pointwise") for op in ops)  # the im2col GEMM


def test_recorder_does_see_torch_convolutions_and_pooling():
    ops = ops_dispatched(conv2d_torch, lambda t, k: torch.nn.functional.max_pool2d(t, k))
    assert any(op.startswith("aten::convolution") for op in torch_conv_or_pool(ops)), ops
    assert any("max_pool2d" in op for op in torch_conv_or_pool(ops)), ops


def test_backward_graph_is_the_custom_op_only():
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, requires_grad=True)
    y = conv2d(x, w, padding="same")
    assert "cnnexp_conv2d" in type(y.grad_fn).__name__
    parents = [fn for fn, _ in y.grad_fn.next_functions if fn is not None]
    assert parents and all(type(fn).__name__ == "AccumulateGrad" for fn in parents)


# The ops added for torch's full conv/pool/norm contract: each forward + backward, no torch conv, pooling or
# normalization op (aten names containing "conv", "pool" or "norm") may be dispatched.
FORBIDDEN = ("conv", "pool", "norm")


def _new_op_calls():
    from cnnexp.functional import avg_pool2d, batch_norm, global_avg_pool2d, global_max_pool2d, max_pool2d, pad2d

    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    return {
        "depthwise conv2d": lambda: conv2d(x, torch.randn(8, 1, 3, 3, requires_grad=True), torch.randn(8), 2,
                                           "same", groups=4),
        "grouped conv2d": lambda: conv2d(x, torch.randn(6, 2, 3, 3, requires_grad=True), None, 1, 1, groups=2),
        "unbatched conv2d": lambda: conv2d(x[0], torch.randn(3, 4, 3, 3, requires_grad=True), padding="same"),
        "max_pool2d torch args": lambda: max_pool2d(x, 3, 2, 1, dilation=2, ceil_mode=True, return_indices=True)[0],
        "avg_pool2d": lambda: avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        "avg_pool2d same": lambda: avg_pool2d(x, 2, padding="same"),
        "global pools": lambda: global_avg_pool2d(x) + global_max_pool2d(x),
        "batch_norm train": lambda: batch_norm(x, torch.zeros(4), torch.ones(4), torch.ones(4, requires_grad=True),
                                               torch.zeros(4, requires_grad=True), training=True),
        "batch_norm eval": lambda: batch_norm(x, torch.zeros(4), torch.ones(4), training=False),
        "pad2d reflect": lambda: pad2d(x, (1, 2, 2, 1), "reflect"),
    }


def test_new_ops_dispatch_no_torch_conv_pool_or_norm_op():
    for name, call in _new_op_calls().items():
        with OpRecorder() as rec:
            call().square().sum().backward()
        assert rec.ops, name
        torch_ops = [op for op in rec.ops if op.startswith("aten::")]  # cnnexp:: ops are ours (recorded inside too)
        assert [op for op in torch_ops if any(f in op.lower() for f in FORBIDDEN)] == [], name


def test_recorder_does_see_torch_pooling_and_normalization():
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    with OpRecorder() as rec:
        y = F.avg_pool2d(x, 2).sum() + F.max_pool2d(x, 2).sum() + F.batch_norm(x, None, None, training=True).sum()
        y.backward()
    assert {"aten::avg_pool2d", "aten::max_pool2d_with_indices"} <= set(rec.ops)
    assert any("batch_norm" in op for op in rec.ops)
