"""The lecture's worked example: one window times one kernel, summed, gives 308."""

from __future__ import annotations

import pytest
import torch

from cnnexp.functional import conv2d, conv2d_naive

PATCH = torch.tensor([[0.0, 0, 0], [0, 156, 155], [0, 153, 154]])
KERNEL = torch.tensor([[-1.0, -1, 1], [0, 1, -1], [0, 1, 1]])
IMPLS = pytest.mark.parametrize("conv", [conv2d_naive, conv2d], ids=["naive", "custom"])


@IMPLS
def test_patch_times_kernel_is_308(conv):
    assert conv(PATCH.view(1, 1, 3, 3), KERNEL.view(1, 1, 3, 3)).item() == 308.0


@IMPLS
def test_first_value_of_a_padded_image_is_308(conv):
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, :2, :2] = PATCH[1:, 1:]  # 'same' padding adds the zero border of the patch
    image[0, 0, 2:, 2:] = 17.0
    out = conv(image, KERNEL.view(1, 1, 3, 3), padding="same")
    assert out.shape == (1, 1, 5, 5)
    assert out[0, 0, 0, 0].item() == 308.0


@IMPLS
def test_three_channels_and_bias_sum_per_channel_results(conv):
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 3, 6, 6), generator=gen).float()
    image[0, :, :2, :2] = PATCH[1:, 1:]
    kernels = torch.stack([KERNEL, KERNEL.flip(0), -KERNEL.t()])  # (3, 3, 3): one 3x3 kernel per channel
    bias = torch.tensor([1.0])
    out = conv(image, kernels.unsqueeze(0), bias, padding="same")  # (1, 1, 6, 6)
    per_channel = [conv(image[:, c : c + 1], kernels[c].view(1, 1, 3, 3), padding="same") for c in range(3)]
    torch.testing.assert_close(out, sum(per_channel) + bias)
    assert per_channel[0][0, 0, 0, 0].item() == 308.0
