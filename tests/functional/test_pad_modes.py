"""nn.Conv2d's padding modes from scratch (pad2d): forward vs F.pad and gradcheck in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnexp.functional import pad2d

PADS = [(1, 1, 1, 1), (0, 2, 3, 1), (2, 0, 0, 2)]


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "zeros"])
@pytest.mark.parametrize("pads", PADS, ids=str)
def test_pad2d_matches_f_pad_and_passes_gradcheck(mode, pads):
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    t, b, l, r = pads
    ref = F.pad(x, (l, r, t, b), mode="constant" if mode == "zeros" else mode)
    torch.testing.assert_close(pad2d(x, pads, mode), ref)
    assert torch.autograd.gradcheck(lambda a: pad2d(a, pads, mode), (x,), fast_mode=True)


@pytest.mark.parametrize("mode, pads, needle", [("reflect", (4, 0, 0, 0), "smaller than"),
                                                ("circular", (0, 0, 6, 0), "at most"),
                                                ("mirror", (1, 1, 1, 1), "padding_mode must be")])
def test_impossible_padding_is_named(mode, pads, needle):
    with pytest.raises(ValueError) as err:
        pad2d(torch.randn(1, 1, 4, 5), pads, mode)
    assert needle in str(err.value)
