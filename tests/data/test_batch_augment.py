"""BatchRandomAffine: one random warp per image of a batch, identity at zero, the documented ranges."""

from __future__ import annotations

import math

import pytest
import torch

from cnnexp.data.batch_augment import BatchRandomAffine
from cnnexp.errors import ConfigError


def test_zero_factors_are_the_identity():
    x = torch.rand(4, 1, 16, 16)
    assert torch.allclose(BatchRandomAffine(0, 0, 0)(x), x, atol=1e-6)


def test_each_image_gets_its_own_warp_drawn_from_the_seed():
    x = torch.rand(1, 1, 16, 16).expand(6, 1, 16, 16).contiguous()  # the same image six times
    aug = BatchRandomAffine(degrees=20, zoom=0.1, translation=0.1)
    torch.manual_seed(0)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert all(not torch.allclose(y[0], y[i]) for i in range(1, 6))
    torch.manual_seed(0)
    assert torch.equal(aug(x), y)


def test_matrices_stay_within_the_ranges():
    aug = BatchRandomAffine(degrees=10, zoom=0.2, translation=0.1)
    theta = aug.theta(10_000)  # (n, 2, 3)
    linear = theta[:, :, :2]
    scale = 1 / linear.det().sqrt()  # the matrix maps output to input: its determinant is 1 / scale^2
    angle = torch.atan2(linear[:, 1, 0], linear[:, 0, 0]).abs()
    assert 0.8 - 1e-4 <= scale.min() and scale.max() <= 1.2 + 1e-4 and scale.max() > 1.15 and scale.min() < 0.85
    assert angle.max() <= math.radians(10) + 1e-5 and angle.max() > math.radians(9)
    assert theta[:, :, 2].abs().max() <= 0.2 + 1e-6  # +-10% of a side is +-0.2 in [-1, 1] coordinates


def test_a_shift_moves_pixels_by_the_fraction_of_the_side():
    x = torch.zeros(1, 1, 20, 20)
    x[0, 0, 10, 10] = 1.0
    aug = BatchRandomAffine(degrees=0, zoom=0, translation=0.1)
    aug.theta = lambda n, device="cpu": torch.tensor([[[1.0, 0.0, 0.2], [0.0, 1.0, 0.0]]])  # +0.1 of the width
    y = aug(x)
    assert y[0, 0].argmax() == 10 * 20 + 8  # sampling 2 pixels to the right moves the image 2 pixels left


@pytest.mark.parametrize("kwargs", [{"degrees": -1}, {"zoom": 1.0}, {"translation": 0.5},
                                    {"padding_mode": "border_wrap"}])
def test_out_of_range_is_a_config_error(kwargs):
    with pytest.raises(ConfigError, match="Fix:"):
        BatchRandomAffine(**kwargs)
