"""conv2d (custom), conv2d_naive and conv2d_torch against F.conv2d, over one table of cases."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
import torch.nn.functional as F

from cnnexp.functional import CONV_IMPLS, conv2d, conv_output_size, get_conv2d, grid_direct, resolve_padding
from cnnexp.functional.geometry import pair

from .cases import CONV_CASES, ConvCase
from .kernels_built import require_kernels


@pytest.fixture(params=["grid_direct", "grid_gemm", "im2col"])
def conv_path(request, monkeypatch):
    """Run a test through every custom-conv path (by default tiny test images would mostly take im2col).

    `grid_direct` (the compiled kernel) runs only CPU float32; other dtypes take `grid_gemm` there too.
    """
    module = importlib.import_module("cnnexp.functional.conv2d")
    monkeypatch.setattr(module, "GRID_MAX_OVERHEAD", 0.0 if request.param == "im2col" else float("inf"))
    if request.param == "grid_gemm":
        monkeypatch.setattr(grid_direct, "usable", lambda *tensors: False)
    elif request.param == "grid_direct":
        require_kernels()
    return request.param


def reference(case: ConvCase, x, w, b):
    """F.conv2d after explicit padding (independent of the code under test except resolve_padding)."""
    t, bo, l, r = resolve_padding(case.padding, case.hw, case.kernel, case.stride, case.dilation)
    return F.conv2d(F.pad(x, (l, r, t, bo)), w, b, stride=pair(case.stride), dilation=pair(case.dilation))


@pytest.mark.parametrize("impl", sorted(CONV_IMPLS))
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_forward_matches_torch(case: ConvCase, impl: str):
    x, w, b = case.tensors()
    got = get_conv2d(impl)(x, w, b, **case.kwargs())
    torch.testing.assert_close(got, reference(case, x, w, b), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_gradcheck_float64(case: ConvCase, conv_path):
    x, w, b = case.tensors()
    inputs = tuple(t.requires_grad_() for t in (x, w, b) if t is not None)

    def fn(*args):
        return conv2d(args[0], args[1], args[2] if case.bias else None, **case.kwargs())

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_gradients_match_torch(case: ConvCase, conv_path):
    """Same gradients as autograd through F.conv2d, for a non-trivial upstream gradient."""
    ours = [t.requires_grad_() for t in case.tensors() if t is not None]
    ref = [t.detach().clone().requires_grad_() for t in ours]
    y_ours = conv2d(ours[0], ours[1], ours[2] if case.bias else None, **case.kwargs())
    y_ref = reference(case, ref[0], ref[1], ref[2] if case.bias else None)
    upstream = torch.randn_like(y_ref)
    (y_ours * upstream).sum().backward()
    (y_ref * upstream).sum().backward()
    for a, e in zip(ours, ref):
        torch.testing.assert_close(a.grad, e.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_float32_forward_and_gradients(case: ConvCase, conv_path):
    """float32 takes the compiled kernel or the oneDNN GEMM on CPU (float64 takes torch.mm): check it too."""
    ours = [t.requires_grad_() for t in case.tensors(torch.float32) if t is not None]
    ref = [t.detach().clone().requires_grad_() for t in ours]
    y_ours = conv2d(ours[0], ours[1], ours[2] if case.bias else None, **case.kwargs())
    y_ref = reference(case, ref[0], ref[1], ref[2] if case.bias else None)
    torch.testing.assert_close(y_ours, y_ref, rtol=1e-4, atol=1e-4)
    upstream = torch.randn_like(y_ref)
    (y_ours * upstream).sum().backward()
    (y_ref * upstream).sum().backward()
    for a, e in zip(ours, ref):
        torch.testing.assert_close(a.grad, e.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [CONV_CASES[3], CONV_CASES[6]], ids=["planar", "nhwc"])
def test_blocked_path_matches_single_block(monkeypatch, case: ConvCase):
    """The grid path splits big inputs into blocks (C_in <= 4: image groups); force tiny blocks and compare."""
    from cnnexp.functional import grid_gemm

    inputs = [t.requires_grad_() for t in case.tensors() if t is not None]
    y_one = conv2d(*inputs, **case.kwargs())
    grads_one = torch.autograd.grad(y_one.square().sum(), inputs)
    monkeypatch.setattr(grid_gemm, "BLOCK_FLOATS", 1)
    y_blocks = conv2d(*inputs, **case.kwargs())
    grads_blocks = torch.autograd.grad(y_blocks.square().sum(), inputs)
    torch.testing.assert_close(y_blocks, y_one)
    for a, e in zip(grads_blocks, grads_one):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_output_shape_formula(case: ConvCase):
    x, w, b = case.tensors()
    y = conv2d(x, w, b, **case.kwargs())
    (sh, sw), (dh, dw), p = pair(case.stride), pair(case.dilation), case.padding
    ph, pw = (p, p) if isinstance(p, str) else pair(p)
    expected = (conv_output_size(case.hw[0], case.kernel[0], sh, ph, dh),
                conv_output_size(case.hw[1], case.kernel[1], sw, pw, dw))
    assert tuple(y.shape) == (case.n, case.c_out, *expected)
    if p == "same":
        assert expected == (math.ceil(case.hw[0] / sh), math.ceil(case.hw[1] / sw))


def test_only_needed_gradients_are_computed():
    case = CONV_CASES[1]
    x, w, b = case.tensors()
    w.requires_grad_()
    conv2d(x, w, b, **case.kwargs()).sum().backward()
    assert x.grad is None and w.grad is not None


def test_channels_last_and_noncontiguous_inputs():
    case = CONV_CASES[2]
    x, w, b = case.tensors()
    expected = reference(case, x, w, b)
    for variant in (x.contiguous(memory_format=torch.channels_last), x.transpose(2, 3).contiguous().transpose(2, 3)):
        torch.testing.assert_close(conv2d(variant, w, b, **case.kwargs()), expected)


@pytest.mark.parametrize(
    ("kwargs", "shapes", "match"),
    [
        ({"stride": 0}, None, "stride"),
        ({"dilation": 0}, None, "dilation"),
        ({"stride": (1, -1)}, None, "stride"),
        ({"padding": "full"}, None, "padding"),
        ({"padding": -1}, None, "padding"),
        ({}, ((1, 3, 5, 5), (2, 4, 3, 3)), "channels"),
        ({}, ((1, 3, 4, 4), (2, 3, 5, 5)), "kernel_size"),
        ({"dilation": 3}, ((1, 3, 6, 6), (2, 3, 3, 3)), "kernel_size"),
        ({}, ((5, 5), (2, 3, 3, 3)), "4-D"),  # (C, H, W) is torch's unbatched form, valid since groups came
        ({}, ((1, 3, 5, 5), (2, 3, 0, 3)), "kernel_size"),
    ],
)
@pytest.mark.parametrize("impl", sorted(CONV_IMPLS))
def test_bad_arguments_raise_value_error(impl, kwargs, shapes, match):
    xs, ws = shapes or ((1, 3, 5, 5), (2, 3, 3, 3))
    with pytest.raises(ValueError, match=match):
        get_conv2d(impl)(torch.randn(xs), torch.randn(ws), None, **kwargs)


@pytest.mark.parametrize("odd_one", ["weight", "bias"])
def test_mixed_dtypes_raise_value_error(odd_one):
    """A float64 bias (or weight) with float32 x would be read as float32 by the compiled kernel: refuse it."""
    x, w, b = torch.randn(2, 4, 6, 6), torch.randn(8, 4, 3, 3), torch.randn(8)
    operands = {"weight": w, "bias": b}
    operands[odd_one] = operands[odd_one].double()
    with pytest.raises(ValueError, match=f"{odd_one} is torch.float64 but x is torch.float32"):
        conv2d(x, operands["weight"], operands["bias"], padding="same")


def test_bias_length_is_checked():
    with pytest.raises(ValueError, match="bias"):
        conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3), torch.randn(3))


def test_get_conv2d_lists_choices():
    assert get_conv2d("custom") is conv2d
    with pytest.raises(ValueError, match="custom.*naive.*torch"):
        get_conv2d("cudnn")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_cuda_parity(case: ConvCase):
    cpu = [t.requires_grad_() for t in case.tensors() if t is not None]
    gpu = [t.detach().cuda().requires_grad_() for t in cpu]
    y_gpu = conv2d(gpu[0], gpu[1], gpu[2] if case.bias else None, **case.kwargs())
    y_cpu = reference(case, cpu[0], cpu[1], cpu[2] if case.bias else None)
    assert y_gpu.device.type == "cuda"
    torch.testing.assert_close(y_gpu.cpu(), y_cpu)
    upstream = torch.randn_like(y_cpu)
    (y_gpu * upstream.cuda()).sum().backward()
    (y_cpu * upstream).sum().backward()
    for a, e in zip(gpu, cpu):
        assert a.grad.device.type == "cuda"
        torch.testing.assert_close(a.grad.cpu(), e.grad)


@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[2], CONV_CASES[6]], ids=str)
def test_output_allows_inplace_ops(case: ConvCase, conv_path):
    """Layers may apply relu_ in place on the conv output; gradients must still be right."""
    ours = [t.requires_grad_() for t in case.tensors() if t is not None]
    ref = [t.detach().clone().requires_grad_() for t in ours]
    y = conv2d(ours[0], ours[1], ours[2] if case.bias else None, **case.kwargs()).relu_()
    y_ref = reference(case, ref[0], ref[1], ref[2] if case.bias else None).relu_()
    y.square().sum().backward()
    y_ref.square().sum().backward()
    for a, e in zip(ours, ref):
        torch.testing.assert_close(a.grad, e.grad)
