"""`torch.library.opcheck` over the conv and pool test tables: every cnnexp custom op has a schema that matches
what it does, a fake (shape-only) implementation that agrees with the real one (shapes, strides, dtypes), an
autograd registration, and (a subset, since it compiles) a backward that AOTAutograd traces with dynamic shapes."""

from __future__ import annotations

import importlib

import pytest
import torch

from cnnexp.functional.geometry import conv_geometry, window_geometry

from .cases import CONV_CASES, ConvCase
from .test_max_pool2d import IDS, POOL_CASES, inputs

conv_module = importlib.import_module("cnnexp.functional.conv2d")  # the package's `conv2d` is the function
pool_module = importlib.import_module("cnnexp.functional.max_pool2d")

CHEAP = ("test_schema", "test_autograd_registration", "test_faketensor")
DTYPES = [torch.float32, torch.float64]
# tracing compiles, so a subset: the grid path (NHWC) in float32, the strided im2col path with dilation in float64
AOT_CONV_CASES = [(CONV_CASES[18], torch.float32), (CONV_CASES[7], torch.float64)]
AOT_POOL_CASES = [(*POOL_CASES[4], dtype) for dtype in DTYPES]  # overlapping windows, -inf padding


def conv_args(case: ConvCase, dtype: torch.dtype, grad: bool):
    """`(x, weight, bias, stride, pads, dilation)` for `cnnexp::conv2d`, and dL/dy of the output's shape."""
    x, w, b = case.tensors(dtype)
    if dtype == torch.float32:  # the custom conv's own inputs are channels_last; this takes the compiled kernel
        x = x.contiguous(memory_format=torch.channels_last)
    g = conv_geometry(x, w, b, case.stride, case.padding, case.dilation)
    if grad:
        x, w, b = (t.requires_grad_() if t is not None else None for t in (x, w, b))
    upstream = torch.randn(case.n, case.c_out, *g.out_hw, dtype=dtype)
    return (x, w, b, list(g.stride), list(g.pads), list(g.dilation)), upstream


def check_conv_ops(case: ConvCase, dtype: torch.dtype, test_utils) -> None:
    for grad in (False, True):
        args, _ = conv_args(case, dtype, grad)
        torch.library.opcheck(conv_module.conv2d_op, args, test_utils=test_utils)
    (x, w, _, *window), upstream = conv_args(case, dtype, grad=False)
    torch.library.opcheck(conv_module.input_grad_op, (upstream, w, list(x.shape[2:]), *window), test_utils=test_utils)
    torch.library.opcheck(conv_module.weight_grad_op, (upstream, x, list(w.shape[2:]), *window),
                          test_utils=test_utils)


def pool_args(shape, kernel, stride, padding, dtype, channels_last: bool):
    x = inputs(shape, ties=False, channels_last=channels_last).to(dtype)
    g = window_geometry(tuple(shape[2:]), kernel, kernel if stride is None else stride, padding, 1, op="max_pool2d")
    return x, [list(g.kernel), list(g.stride), list(g.pads)], g


def check_pool_ops(shape, kernel, stride, padding, dtype, test_utils) -> None:
    for channels_last in (False, True):  # channels_last float32: the compiled kernel
        x, window, g = pool_args(shape, kernel, stride, padding, dtype, channels_last)
        torch.library.opcheck(pool_module.max_pool2d_op, (x, *window), test_utils=test_utils)
        torch.library.opcheck(pool_module.max_pool2d_op, (x.clone().requires_grad_(), *window), test_utils=test_utils)
        y = pool_module.max_pool2d_op(x, *window)
        upstream = torch.randn_like(y)
        torch.library.opcheck(pool_module.max_pool2d_backward_op, (upstream, x, y, *window), test_utils=test_utils)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_ops_schema_fake_and_autograd_registration(case, dtype):
    check_conv_ops(case, dtype, CHEAP)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_CASES, ids=IDS)
def test_pool_ops_schema_fake_and_autograd_registration(shape, kernel, stride, padding, dtype):
    check_pool_ops(shape, kernel, stride, padding, dtype, CHEAP)


@pytest.mark.slow
@pytest.mark.parametrize(("case", "dtype"), AOT_CONV_CASES, ids=str)
def test_conv_ops_trace_with_dynamic_shapes(case, dtype):
    check_conv_ops(case, dtype, ("test_aot_dispatch_dynamic",))


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "dtype"), AOT_POOL_CASES, ids=str)
def test_pool_ops_trace_with_dynamic_shapes(shape, kernel, stride, padding, dtype):
    check_pool_ops(shape, kernel, stride, padding, dtype, ("test_aot_dispatch_dynamic",))


def _transposed_double(x: torch.Tensor) -> torch.Tensor:
    return (x.t().contiguous() * 2).t()  # column-major strides


def test_opcheck_catches_a_fake_that_disagrees():
    """The control: a fake implementation with the wrong strides fails the fake-tensor check."""
    op = torch.library.custom_op("cnnexp_test::bad_fake", _transposed_double, mutates_args=())
    op.register_fake(lambda x: torch.empty_like(x, memory_format=torch.contiguous_format))
    with pytest.raises(Exception, match="(?i)stride"):
        torch.library.opcheck(op, (torch.randn(3, 4),), test_utils=("test_faketensor",))
