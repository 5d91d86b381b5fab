"""cnnexp.functional.batch_norm against torch.nn.functional.batch_norm in float64: outputs, running statistics
(torch's momentum, unbiased running variance; Keras's biased one on request) and gradcheck, from one table."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnexp.functional import batch_norm

# (input shape, training, momentum, eps, affine, running stats tracked)
CASES = [
    ((4, 3, 5, 5), True, 0.1, 1e-5, True, True),
    ((4, 3, 5, 5), False, 0.1, 1e-5, True, True),
    ((6, 2), True, 0.3, 1e-3, True, True),  # (N, C)
    ((3, 2, 7), False, 0.5, 0.5, False, True),  # (N, C, L), no affine
    ((2, 3, 2, 3), True, 0.9, 1e-3, False, False),  # batch statistics only
]


def tensors(shape, affine, tracked, seed=0):
    gen = torch.Generator().manual_seed(seed)
    c = shape[1]
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2 + 1
    rm = torch.randn(c, generator=gen, dtype=torch.float64) if tracked else None
    rv = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5 if tracked else None
    w = torch.randn(c, generator=gen, dtype=torch.float64) if affine else None
    b = torch.randn(c, generator=gen, dtype=torch.float64) if affine else None
    return x, rm, rv, w, b


def clone(t):
    return None if t is None else t.clone()


@pytest.mark.parametrize("shape, training, momentum, eps, affine, tracked", CASES, ids=str)
def test_output_and_running_statistics_match_torch(shape, training, momentum, eps, affine, tracked):
    x, rm, rv, w, b = tensors(shape, affine, tracked)
    rm_t, rv_t = clone(rm), clone(rv)
    y = batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, eps=eps)
    y_t = F.batch_norm(x, rm_t, rv_t, w, b, training=training, momentum=momentum, eps=eps)
    torch.testing.assert_close(y, y_t)
    if tracked:
        torch.testing.assert_close(rm, rm_t)
        torch.testing.assert_close(rv, rv_t)


@pytest.mark.parametrize("shape, training, momentum, eps, affine, tracked", CASES, ids=str)
def test_gradients_pass_gradcheck(shape, training, momentum, eps, affine, tracked):
    x, rm, rv, w, b = tensors(shape, affine, tracked)
    leaves = [t.requires_grad_() for t in (x, w, b) if t is not None]
    if not training:  # eval mode: the running statistics are inputs of the output too
        leaves += [rm.requires_grad_(), rv.requires_grad_()]

    def f(*_):
        return batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, eps=eps)

    assert torch.autograd.gradcheck(f, tuple(leaves), fast_mode=True)


def test_biased_running_variance_for_keras():
    x, rm, rv, _, _ = tensors((5, 2, 3, 3), False, True)
    rv0 = rv.clone()
    batch_norm(x, rm, rv, training=True, momentum=0.01, unbiased=False)  # Keras momentum 0.99
    torch.testing.assert_close(rv, 0.99 * rv0 + 0.01 * x.var(dim=(0, 2, 3), unbiased=False))


@pytest.mark.parametrize("kwargs, needle", [
    (dict(running_mean=None, running_var=None, training=False), "eval mode"),
    (dict(running_mean=torch.zeros(3), running_var=torch.ones(3), training=True, x=torch.randn(1, 3)), "more than one"),
])
def test_impossible_calls_are_named(kwargs, needle):
    x = kwargs.pop("x", torch.randn(2, 3))
    with pytest.raises(ValueError) as err:
        batch_norm(x, **kwargs)
    assert needle in str(err.value)
