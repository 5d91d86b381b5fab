"""geometry.py: Keras/TensorFlow 'same' padding at any stride and dilation; explicit padding; output sizes; and the
autocast operand rule.

The custom conv under torch.autocast (trainer=gpu precision=16-mixed / bf16-mixed) behaves like F.conv2d:
operands cast to the autocast dtype, one dtype through forward and backward, float32 gradients for float32 leaves.
On CPU the float32 GEMM is oneDNN's (never autocast); `plain_gemm` switches it off so the test takes the
addmm path that CUDA takes, where autocast would otherwise cast only the matrix products.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import cnnexp.functional.im2col as im2col_module
from cnnexp.functional import conv2d, conv_output_size, resolve_padding, same_padding


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation", "expected"),
    [
        (5, 3, 1, 1, (1, 1)),
        (4, 2, 1, 1, (0, 1)),  # even kernel: the odd pixel goes after
        (4, 3, 2, 1, (0, 1)),  # out 2, total 1
        (5, 3, 2, 1, (1, 1)),  # out 3, total 2
        (6, 5, 3, 1, (1, 1)),  # out 2, total 3 + 5 - 6 = 2
        (5, 4, 2, 1, (1, 2)),  # out 3, total 4 + 4 - 5 = 3
        (7, 3, 1, 2, (2, 2)),  # dilated extent 5
        (8, 3, 3, 2, (1, 2)),  # out 3, total 2*3 + 5 - 8 = 3
        (3, 1, 2, 1, (0, 0)),
        (2, 5, 1, 1, (2, 2)),  # kernel larger than the input
        (10, 2, 2, 1, (0, 0)),
    ],
)
def test_same_padding_table(size, kernel, stride, dilation, expected):
    assert same_padding(size, kernel, stride, dilation) == expected


@pytest.mark.parametrize("size", range(1, 14))
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_output_is_ceil_of_size_over_stride(size, kernel, stride, dilation):
    before, after = same_padding(size, kernel, stride, dilation)
    assert 0 <= after - before <= 1
    assert conv_output_size(size, kernel, stride, "same", dilation) == math.ceil(size / stride)
    assert conv_output_size(size, kernel, stride, (before, after), dilation) == math.ceil(size / stride)


@pytest.mark.parametrize(
    ("padding", "expected"),
    [("valid", (0, 0, 0, 0)), ("VALID", (0, 0, 0, 0)), (2, (2, 2, 2, 2)), ((1, 3), (1, 1, 3, 3)),
     ("same", (0, 1, 1, 2))],
)
def test_resolve_padding(padding, expected):
    # in (4, 7), kernel (2, 4): 'same' gives H total 1 -> (0, 1), W total 3 -> (1, 2)
    assert resolve_padding(padding, (4, 7), (2, 4), 1, 1) == expected


@pytest.mark.parametrize("padding", ["full", -1, (1, -2), (1, 2, 3), 1.5, True])
def test_resolve_padding_rejects(padding):
    with pytest.raises(ValueError, match="padding"):
        resolve_padding(padding, (5, 5), (3, 3))


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation", "expected"),
    [(180, 3, 1, "same", 1, 180), (180, 2, 2, "valid", 1, 90), (45, 2, 2, "valid", 1, 22), (7, 3, 2, 1, 1, 4),
     (9, 3, 1, "valid", 2, 5), (5, 5, 1, "valid", 1, 1), (4, 5, 1, "valid", 1, 0)],
)
def test_conv_output_size(size, kernel, stride, padding, dilation, expected):
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected


# --- the autocast operand rule, through conv2d -------------------------------------------------------------------

CASES = [  # (x shape, C_out, stride, padding): the grid path, the planar RGB path, the strided path
    ((2, 16, 8, 8), 4, 1, "same"),
    ((2, 3, 8, 8), 4, 1, "same"),
    ((2, 16, 9, 9), 4, 2, "same"),
    ((2, 5, 7, 7), 3, 1, "valid"),
]


@pytest.fixture
def plain_gemm(monkeypatch):
    monkeypatch.setattr(im2col_module, "ONEDNN_LINEAR", False)


def _run(conv, x, w, b, stride, padding):
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x, w, b, stride=stride, padding=padding)
    y.float().square().mean().backward()
    return y, x.grad, w.grad, b.grad


@pytest.mark.parametrize("shape, c_out, stride, padding", CASES)
def test_custom_conv_under_autocast_matches_native(plain_gemm, shape, c_out, stride, padding):
    torch.manual_seed(0)
    x, w, b = torch.randn(*shape), torch.randn(c_out, shape[1], 3, 3), torch.randn(c_out)
    y, gx, gw, gb = _run(conv2d, x, w, b, stride, padding)
    top, bottom, left, right = resolve_padding(padding, shape[2:], (3, 3), (stride, stride), (1, 1))
    y_ref, gx_ref, gw_ref, gb_ref = _run(
        lambda x, w, b, stride, padding: F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride),
        x, w, b, stride, padding)

    assert y.dtype == y_ref.dtype == torch.bfloat16
    assert gx.dtype == gw.dtype == gb.dtype == torch.float32
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=2e-2, atol=5e-2)
    for got, ref in [(gx, gx_ref), (gw, gw_ref), (gb, gb_ref)]:
        torch.testing.assert_close(got, ref, rtol=5e-2, atol=5e-2)


def test_outside_autocast_nothing_is_cast():
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    assert conv2d(x, w, padding="same").dtype == torch.float32
    assert conv2d(x.double(), w.double(), padding="same").dtype == torch.float64
