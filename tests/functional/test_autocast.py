"""The custom conv under torch.autocast (trainer=gpu precision=16-mixed / bf16-mixed) behaves like F.conv2d:
operands cast to the autocast dtype, one dtype through forward and backward, float32 gradients for float32 leaves.

On CPU the float32 GEMM is oneDNN's (never autocast); `plain_gemm` switches it off so the test takes the
addmm path that CUDA takes, where autocast would otherwise cast only the matrix products.
"""

import pytest
import torch
import torch.nn.functional as F

import cnnexp.functional.gemm as gemm_module
from cnnexp.functional import conv2d, resolve_padding

CASES = [  # (x shape, C_out, stride, padding): the grid path, the planar RGB path, the strided path
    ((2, 16, 8, 8), 4, 1, "same"),
    ((2, 3, 8, 8), 4, 1, "same"),
    ((2, 16, 9, 9), 4, 2, "same"),
    ((2, 5, 7, 7), 3, 1, "valid"),
]


@pytest.fixture
def plain_gemm(monkeypatch):
    monkeypatch.setattr(gemm_module, "ONEDNN_LINEAR", False)


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
