"""max_pool2d against torch (values and gradients), Keras 'same' / 'valid' rules, and the tie rule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnexp.functional import kernels, max_pool2d, pair, resolve_padding

from .kernels_built import require_kernels

# (shape, kernel_size, stride, padding); stride None = kernel_size (Keras default)
POOL_CASES = [
    ((2, 3, 8, 8), 2, None, "valid"),
    ((2, 3, 9, 7), 2, None, "valid"),  # odd sizes floor
    ((2, 3, 9, 7), 2, None, "same"),  # odd sizes pad -inf at the bottom/right
    ((1, 4, 7, 10), 3, None, "same"),
    ((1, 2, 7, 9), 3, 2, "same"),  # overlapping windows
    ((2, 3, 8, 9), 3, 1, "valid"),
    ((1, 2, 8, 9), (2, 3), (1, 2), "valid"),
    ((1, 2, 10, 9), (2, 3), None, "same"),
]
IDS = [f"{s}-k{k}-s{st}-{p}" for s, k, st, p in POOL_CASES]


def torch_reference(x, kernel, stride, padding):
    """F.max_pool2d on an explicitly -inf padded input."""
    stride = kernel if stride is None else stride
    t, b, l, r = resolve_padding(padding, x.shape[-2:], pair(kernel), stride)
    return F.max_pool2d(F.pad(x, (l, r, t, b), value=-math.inf), kernel, stride)


def inputs(shape, ties: bool, channels_last: bool = False):
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 3, shape, generator=gen).double() if ties else torch.randn(shape, generator=gen).double()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_CASES, ids=IDS)
def test_forward_and_backward_match_torch(shape, kernel, stride, padding, ties, channels_last):
    x = inputs(shape, ties, channels_last).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = max_pool2d(x, kernel, stride, padding), torch_reference(x_ref, kernel, stride, padding)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    upstream = torch.randn_like(y_ref)
    (y * upstream).sum().backward()
    (y_ref * upstream).sum().backward()
    # overlapping windows sum gradients in another order than torch: allow float64 rounding
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_CASES, ids=IDS)
def test_gradcheck(shape, kernel, stride, padding):
    x = inputs(shape, ties=False).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: max_pool2d(t, kernel, stride, padding), (x,), fast_mode=True)


@pytest.mark.parametrize(
    ("window", "winner"),
    [([[1.0, 3.0], [3.0, 3.0]], (0, 1)), ([[2.0, 2.0], [2.0, 2.0]], (0, 0)), ([[0.0, 1.0], [5.0, 5.0]], (1, 0))],
)
@pytest.mark.parametrize("stride", [None, 1], ids=["blocks", "windows"])
def test_tie_rule_first_in_row_major_order(window, winner, stride):
    x = torch.tensor(window).view(1, 1, 2, 2).requires_grad_()
    max_pool2d(x, 2, stride).sum().backward()
    expected = torch.zeros(2, 2)
    expected[winner] = 1.0
    assert torch.equal(x.grad[0, 0], expected)


@pytest.mark.parametrize(("size", "padding", "expected"), [(45, "valid", 22), (45, "same", 23), (180, "valid", 90)])
def test_keras_output_sizes(size, padding, expected):
    assert max_pool2d(torch.randn(1, 1, size, size), padding=padding).shape[-2:] == (expected, expected)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"kernel_size": 0}, "kernel_size"), ({"stride": 0}, "stride"), ({"padding": "x"}, "padding"),
                          ({"kernel_size": 9}, "kernel_size")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        max_pool2d(torch.randn(1, 1, 6, 6), **kwargs)


@pytest.mark.parametrize("channels", [1, 3, 16, 35])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_CASES, ids=IDS)
def test_compiled_kernel_equals_the_tap_path(shape, kernel, stride, padding, ties, channels, monkeypatch):
    """CPU float32 channels_last runs native/max_pool.cpp: same values, same arg-max, same gradients (exactly)
    as the tap-by-tap path; 16 and 35 channels cover whole vectors and the remainder."""
    require_kernels()
    calls = []
    monkeypatch.setattr(kernels, "max_pool_backward", lambda *a, _f=kernels.max_pool_backward: calls.append(1) or _f(*a))
    shape = (shape[0], channels, *shape[2:])
    x = inputs(shape, ties, channels_last=True).float().requires_grad_()
    x_taps = x.detach().clone().requires_grad_()
    y = max_pool2d(x, kernel, stride, padding)
    with kernels.disabled():
        y_taps = max_pool2d(x_taps, kernel, stride, padding)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, y_taps, rtol=0, atol=0)
    upstream = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    (y * upstream).sum().backward()
    with kernels.disabled():  # each op picks its path where it runs: the taps' backward too
        (y_taps * upstream).sum().backward()
    assert calls == [1]
    torch.testing.assert_close(x.grad, x_taps.grad, rtol=1e-6, atol=1e-6)  # overlapping windows: sum order


def test_compiled_kernel_propagates_nan_and_skips_padding():
    require_kernels()
    x = torch.tensor([[1.0, float("nan"), 2.0], [-1.0, -2.0, -3.0], [-5.0, -6.0, -7.0]]).view(1, 1, 3, 3)
    y = max_pool2d(x, 2, padding="same")  # (2, 2): windows at the bottom/right are mostly -inf padding
    assert torch.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == 2.0 and y[0, 0, 1, 0] == -5.0 and y[0, 0, 1, 1] == -7.0
