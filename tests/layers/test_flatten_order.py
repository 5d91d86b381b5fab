"""Flatten's channels_last order is Keras's (H, W, C) order, so Keras Dense kernels port unchanged."""

from __future__ import annotations

import torch

from cnnexp.layers import Flatten


def test_channels_last_flattens_like_keras_on_hwc_data():
    x = torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)  # (N, C, H, W)
    keras_hwc = x.permute(0, 2, 3, 1)  # what Keras holds: (N, H, W, C)
    y = Flatten()(x)
    torch.testing.assert_close(y, keras_hwc.reshape(2, -1))
    n, c, h, w = 1, 2, 3, 4
    assert y[n, (h * 5 + w) * 3 + c] == x[n, c, h, w]  # index = (h * W + w) * C + c


def test_channels_first_flattens_like_torch():
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(Flatten("channels_first")(x), x.flatten(1))


def test_flatten_of_feature_vectors_is_the_identity_in_both_orders():
    x = torch.randn(4, 7)
    for fmt in ("channels_last", "channels_first"):
        torch.testing.assert_close(Flatten(fmt)(x), x)
