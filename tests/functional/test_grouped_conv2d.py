"""torch's `groups` (grouped and depthwise) and unbatched input for cnnexp's conv2d: float64 forward vs
F.conv2d and gradcheck, from one table; plus the argument checks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from cnnexp.errors import ShapeError
from cnnexp.functional import conv2d, same_padding


@dataclass(frozen=True)
class GroupCase:
    n: int | None  # None: unbatched (C, H, W)
    c_in: int
    c_out: int
    groups: int
    hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: str | int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1
    bias: bool = True

    def tensors(self):
        gen = torch.Generator().manual_seed(0)
        shape = (self.c_in, *self.hw) if self.n is None else (self.n, self.c_in, *self.hw)
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        w = torch.randn(self.c_out, self.c_in // self.groups, *self.kernel, generator=gen, dtype=torch.float64)
        b = torch.randn(self.c_out, generator=gen, dtype=torch.float64) if self.bias else None
        return x, w, b

    def kwargs(self):
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}


CASES = [
    GroupCase(2, 4, 4, 4, (6, 6), (3, 3)),  # depthwise
    GroupCase(2, 4, 8, 4, (6, 7), (3, 3), padding=1),  # depthwise, multiplier 2
    GroupCase(1, 3, 3, 3, (9, 8), (3, 3), stride=2, padding="same"),  # depthwise, Keras 'same' at stride 2
    GroupCase(2, 5, 15, 5, (8, 8), (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2), bias=False),
    GroupCase(1, 4, 4, 4, (7, 7), (5, 5), padding="same", dilation=2),
    GroupCase(2, 4, 6, 2, (6, 5), (3, 2)),  # grouped
    GroupCase(2, 6, 4, 2, (9, 9), (3, 3), stride=2, padding="same", dilation=1),
    GroupCase(1, 8, 8, 4, (6, 6), (1, 1), bias=False),
    GroupCase(2, 6, 9, 3, (7, 8), (3, 3), stride=(3, 2), padding=(2, 1), dilation=2),
    GroupCase(None, 4, 3, 1, (5, 5), (3, 3), padding=1),  # unbatched, plain
    GroupCase(None, 4, 8, 4, (6, 6), (3, 3), stride=2),  # unbatched, depthwise
    GroupCase(None, 4, 6, 2, (6, 5), (3, 2), padding="same"),  # unbatched, grouped
]


def torch_reference(x, w, b, case: GroupCase):
    """F.conv2d, with Keras's 'same' (any stride) spelled out as an explicit asymmetric zero pad."""
    padding = case.padding
    if padding == "same":
        (kh, kw), (sh, sw) = case.kernel, (case.stride,) * 2 if isinstance(case.stride, int) else case.stride
        dh, dw = (case.dilation,) * 2 if isinstance(case.dilation, int) else case.dilation
        t, bo = same_padding(x.shape[-2], kh, sh, dh)
        l, r = same_padding(x.shape[-1], kw, sw, dw)
        x, padding = F.pad(x, (l, r, t, bo)), 0
    return F.conv2d(x, w, b, case.stride, padding, case.dilation, case.groups)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_matches_torch_in_float64(case):
    x, w, b = case.tensors()
    torch.testing.assert_close(conv2d(x, w, b, **case.kwargs()), torch_reference(x, w, b, case))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gradients_pass_gradcheck(case):
    x, w, b = (t.requires_grad_() if t is not None else None for t in case.tensors())
    inputs = (x, w) if b is None else (x, w, b)
    assert torch.autograd.gradcheck(lambda *t: conv2d(*t, **case.kwargs()), inputs, fast_mode=True)


def test_depthwise_runs_the_tap_sum_function_and_grouped_the_batched_gemm():
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    assert type(conv2d(x, torch.randn(8, 1, 3, 3), groups=4).grad_fn).__name__.startswith("DepthwiseConv2d")
    assert type(conv2d(x, torch.randn(6, 2, 3, 3), groups=2).grad_fn).__name__.startswith("GroupedConv2d")


@pytest.mark.parametrize("x_shape, w_shape, groups, needle", [
    ((1, 4, 5, 5), (6, 2, 3, 3), 3, "multiples of groups"),
    ((1, 4, 5, 5), (6, 1, 3, 3), 2, "C_in / groups"),
    ((1, 4, 5, 5), (4, 1, 3, 3), 0, "groups must be"),
    ((4, 5), (4, 1, 3, 3), 4, "(C_in, H, W)"),
])
def test_bad_groups_or_shapes_are_named(x_shape, w_shape, groups, needle):
    with pytest.raises(ValueError) as err:
        conv2d(torch.randn(x_shape), torch.randn(w_shape), groups=groups)
    assert needle in str(err.value)


def test_shape_errors_are_shape_errors():
    with pytest.raises(ShapeError):
        conv2d(torch.randn(1, 4, 5, 5), torch.randn(6, 1, 3, 3), groups=2)
