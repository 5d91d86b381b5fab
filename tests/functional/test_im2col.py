"""im2col.py: `gemm`, `a @ w.T (+ bias)` for every operand layout the convolution hands it."""

from __future__ import annotations

import pytest
import torch

from cnnexp.functional import im2col as im2col_module
from cnnexp.functional.im2col import gemm

LAYOUTS = {
    "contiguous": lambda t: t.contiguous(),
    "transposed": lambda t: t.t().contiguous().t(),
    "stride-0 (expanded, as from y.sum())": lambda t: t[:1, :1].expand_as(t),
    "row-strided": lambda t: torch.cat([t, t], 1)[:, ::2],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bias", [False, True])
def test_gemm_matches_mm_for_any_layout(layout, bias):
    gen = torch.Generator().manual_seed(0)
    a, w = torch.randn(37, 11, generator=gen), torch.randn(5, 11, generator=gen)
    b = torch.randn(5, generator=gen) if bias else None
    a2, w2 = LAYOUTS[layout](a), LAYOUTS[layout](w)
    expected = a2 @ w2.t() + (b if bias else 0)
    torch.testing.assert_close(gemm(a2, w2, b), expected, rtol=1e-5, atol=1e-5)


def test_onednn_gets_dense_operands(monkeypatch):
    """oneDNN crawls on stride-0 operands (1000x slower): gemm must hand it row- or column-major ones."""
    if not im2col_module.ONEDNN_LINEAR:
        pytest.skip("this torch build has no oneDNN linear")
    seen = []
    real = torch.ops.mkldnn._linear_pointwise

    def spy(a, w, *args):
        seen.append([t.is_contiguous() or t.t().is_contiguous() for t in (a, w)])
        return real(a, w, *args)

    class Ops:  # stands in for torch.ops.mkldnn inside gemm
        _linear_pointwise = staticmethod(spy)

    monkeypatch.setattr(im2col_module.torch.ops, "mkldnn", Ops, raising=False)
    a = torch.ones(1, 1).expand(64, 8)
    torch.testing.assert_close(gemm(a, torch.ones(3, 8)), torch.full((64, 3), 8.0))
    assert seen == [[True, True]]
