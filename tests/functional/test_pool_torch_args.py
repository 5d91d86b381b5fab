"""max_pool2d's torch arguments (padding, dilation, ceil_mode, return_indices, unbatched input) and avg_pool2d
(count_include_pad, divisor_override, ceil_mode, Keras 'same'): float64 forward vs torch.nn.functional and
gradcheck, one table per op; global pooling; the argument checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnexp.functional import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d, same_padding


def sample(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# (input shape, kwargs in torch's names)
MAX_CASES = [
    ((1, 2, 7, 8), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 9, 9), dict(kernel_size=3, stride=2, dilation=2)),
    ((1, 2, 8, 7), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True)),
    ((2, 2, 6, 6), dict(kernel_size=3, stride=2, ceil_mode=True, return_indices=True)),
    ((3, 7, 6), dict(kernel_size=2, return_indices=True)),  # unbatched
    ((1, 3, 10, 9), dict(kernel_size=(2, 3), stride=(3, 2), padding=(1, 1), dilation=(2, 1), ceil_mode=True)),
    ((1, 1, 5, 5), dict(kernel_size=(3,), stride=(), padding=(1,))),  # torch's 1-tuples and stride=()
]


def _values(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("shape, kw", MAX_CASES, ids=str)
def test_max_pool2d_matches_torch_values_indices_and_gradients(shape, kw):
    x = sample(shape).requires_grad_()
    ours, ref = max_pool2d(x, **kw), F.max_pool2d(x, **{**kw, "stride": kw.get("stride") or None})
    assert isinstance(ours, tuple) == kw.get("return_indices", False)
    if isinstance(ours, tuple):
        torch.testing.assert_close(ours[1], ref[1], rtol=0, atol=0)
        assert not ours[1].requires_grad
    torch.testing.assert_close(_values(ours), _values(ref))
    assert torch.autograd.gradcheck(lambda t: _values(max_pool2d(t, **kw)), (x,))


def test_max_pool2d_ties_and_nan_follow_torch():
    x = torch.tensor([[[[1.0, 1.0, 0.0], [1.0, math.nan, 2.0], [2.0, 2.0, 2.0]]]], requires_grad=True)
    ours, ref = max_pool2d(x, 2, 1, return_indices=True), F.max_pool2d(x, 2, 1, return_indices=True)
    torch.testing.assert_close(ours[0], ref[0], equal_nan=True)
    assert torch.equal(ours[1], ref[1])


def test_all_minus_inf_window_points_at_its_first_pixel_as_torch():
    x = torch.full((1, 1, 3, 3), -math.inf)
    assert torch.equal(max_pool2d(x, 3, 2, 1, return_indices=True)[1], F.max_pool2d(x, 3, 2, 1, return_indices=True)[1])


@pytest.mark.parametrize("shape, kw", [((1, 2, 7, 8), dict(kernel_size=3, stride=2)),
                                       ((2, 1, 6, 5), dict(kernel_size=(2, 3), dilation=(1, 2), return_indices=True))])
def test_max_pool2d_keras_same_pads_with_minus_inf_by_the_tensorflow_rule(shape, kw):
    x = sample(shape)
    (kh, kw_), (sh, sw) = torch.nn.modules.utils._pair(kw["kernel_size"]), (kw.get("stride") or kw["kernel_size"],) * 2
    dh, dw = torch.nn.modules.utils._pair(kw.get("dilation", 1))
    if not isinstance(sh, int):
        sh, sw = sh
    t, b = same_padding(shape[-2], kh, sh, dh)
    l, r = same_padding(shape[-1], kw_, sw, dw)
    ref = F.max_pool2d(F.pad(x, (l, r, t, b), value=-math.inf), kw["kernel_size"], kw.get("stride"),
                       dilation=kw.get("dilation", 1))
    torch.testing.assert_close(_values(max_pool2d(x, padding="same", **kw)), ref)


# (input shape, torch's positional args: kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    ((2, 3, 7, 8), (3, 2, 1, False, True, None)),
    ((2, 3, 7, 8), (3, 2, 1, False, False, None)),
    ((1, 2, 9, 8), ((3, 2), (2, 3), (1, 1), True, True, None)),
    ((1, 2, 9, 8), ((3, 2), (2, 3), (1, 0), True, False, None)),
    ((1, 2, 6, 6), (4, 3, 2, True, True, 5)),
    ((1, 1, 4, 4), (2, (), (0,), False, True, -2)),
    ((3, 7, 7), (2, None, 0, True, True, None)),  # unbatched, ceil_mode
]


@pytest.mark.parametrize("shape, args", AVG_CASES, ids=str)
def test_avg_pool2d_matches_torch_and_passes_gradcheck(shape, args):
    x = sample(shape).requires_grad_()
    torch.testing.assert_close(avg_pool2d(x, *args), F.avg_pool2d(x, *args))
    assert torch.autograd.gradcheck(lambda t: avg_pool2d(t, *args), (x,))


@pytest.mark.parametrize("shape, k, s", [((1, 2, 7, 8), 3, 2), ((2, 1, 5, 6), (2, 3), 1), ((1, 1, 4, 5), 2, 2)])
def test_avg_pool2d_keras_same_leaves_the_padding_out_of_the_mean(shape, k, s):
    x = sample(shape).requires_grad_()
    (kh, kw), (sh, sw) = torch.nn.modules.utils._pair(k), torch.nn.modules.utils._pair(s)
    t, b = same_padding(shape[-2], kh, sh)
    l, r = same_padding(shape[-1], kw, sw)
    sums = F.avg_pool2d(F.pad(x, (l, r, t, b)), k, s, divisor_override=1)
    counts = F.avg_pool2d(F.pad(torch.ones_like(x), (l, r, t, b)), k, s, divisor_override=1)
    torch.testing.assert_close(avg_pool2d(x, k, s, padding="same"), sums / counts)
    assert torch.autograd.gradcheck(lambda a: avg_pool2d(a, k, s, padding="same"), (x,))


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pools_match_torch_reductions_and_pass_gradcheck(keepdims):
    x = sample((2, 2, 3, 4)).requires_grad_()
    torch.testing.assert_close(global_avg_pool2d(x, keepdims), x.mean((2, 3), keepdim=keepdims))
    torch.testing.assert_close(global_max_pool2d(x, keepdims), x.amax((2, 3), keepdim=keepdims))
    assert torch.autograd.gradcheck(lambda t: global_avg_pool2d(t, keepdims), (x,))
    assert torch.autograd.gradcheck(lambda t: global_max_pool2d(t, keepdims), (x,))


def test_global_max_gives_a_tied_plane_gradient_to_its_first_maximum():
    x = torch.tensor([[[[1.0, 3.0], [3.0, 0.0]]]], requires_grad=True)
    global_max_pool2d(x).sum().backward()
    assert x.grad.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("call, needle", [
    (lambda x: max_pool2d(x, 2, padding=2, dilation=2), "at most half"),
    (lambda x: avg_pool2d(x, 3, padding=2), "at most half"),
    (lambda x: avg_pool2d(x, 2, divisor_override=0), "non-zero"),
    (lambda x: avg_pool2d(x, 9), "does not fit"),
    (lambda x: max_pool2d(x, 2, padding="same", ceil_mode=True), "ceil_mode"),
    (lambda x: max_pool2d(x, 0, return_indices=True), "kernel_size must be >= 1"),
    (lambda x: avg_pool2d(x[0, 0, 0], 2), "(N, C, H, W) or (C, H, W)"),
    (lambda x: global_avg_pool2d(x[0]), "4-D"),
])
def test_bad_pooling_arguments_raise_value_errors_naming_them(call, needle):
    with pytest.raises(ValueError) as err:
        call(torch.randn(1, 2, 5, 5))
    assert needle in str(err.value)
