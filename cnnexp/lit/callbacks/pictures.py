"""Pure tensor functions that turn weights and activations into images for TensorBoard.

Every function takes and returns plain tensors (no Lightning, no matplotlib), so the callback in
`tensorboard_pictures.py` stays a thin dispatcher and these can be tested on their own.
Images are channels-first floats in [0, 1]: one image `(C, H, W)`, a batch `(N, C, H, W)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def normalize01(images: Tensor) -> Tensor:
    """Min-max scale each image of a batch to [0, 1] on its own (a constant image becomes 0.5).

    Shape:
        images: `(N, C, H, W)`; returns the same shape.
    """
    flat = images.detach().float().flatten(1)  # (N, C*H*W)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(1e-12), torch.full_like(flat, 0.5))
    return scaled.view_as(images)


def upscale(images: Tensor, min_size: int) -> Tensor:
    """Repeat pixels (nearest neighbour) by the smallest integer factor that makes each side >= min_size.

    A 3x3 kernel or an 8x8 digit is a few pixels wide in TensorBoard; blowing it up keeps its blocks crisp.

    Shape:
        images: `(N, C, h, w)`; returns `(N, C, h * f, w * f)` with `f = ceil(min_size / max(h, w))`, at least 1.
    """
    factor = max(1, math.ceil(min_size / max(images.shape[-2:])))
    if factor == 1:
        return images
    return images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def tile(images: Tensor, ncols: int | None = None, pad: int = 1, pad_value: float = 1.0) -> Tensor:
    """Lay a batch of equally sized images out on a grid (row-major), separated by `pad` pixels.

    Args:
        images: the tiles.
        ncols: tiles per row; default `ceil(sqrt(N))`, a near-square grid.
        pad: border width in pixels around every tile.
        pad_value: the border colour.

    Shape:
        images: `(N, C, h, w)`; returns `(C, rows * (h + pad) + pad, ncols * (w + pad) + pad)`.
    """
    n, c, h, w = images.shape
    ncols = min(n, ncols or math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    grid = images.new_full((c, nrows * (h + pad) + pad, ncols * (w + pad) + pad), pad_value)
    for i in range(n):
        top, left = pad + (i // ncols) * (h + pad), pad + (i % ncols) * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def filters_grid(weight: Tensor, min_size: int = 32) -> Tensor:
    """Show a conv layer's kernels, one tile per output filter, each scaled to [0, 1] on its own.

    With 3 input channels a tile is an RGB picture of the kernel; otherwise it is the kernel averaged
    over its input channels (for the first layer on gray images that is the kernel itself).

    Shape:
        weight: `(C_out, C_in, kH, kW)`; returns `(3 or 1, H, W)`.
    """
    w = weight.detach().float().cpu()
    tiles = w if w.shape[1] == 3 else w.mean(dim=1, keepdim=True)  # (C_out, 3|1, kH, kW)
    return tile(upscale(normalize01(tiles), min_size))


def feature_maps_grid(feature_maps: Tensor, max_maps: int = 32, min_size: int = 48) -> Tensor:
    """Show the first `max_maps` channels of one image's activations as gray tiles ("feature maps").

    Shape:
        feature_maps: `(C, H, W)`; returns `(1, H', W')`.
    """
    maps = feature_maps.detach().float().cpu()[:max_maps].unsqueeze(1)  # (C', 1, H, W)
    return tile(upscale(normalize01(maps), min_size))


def confusion_counts(preds: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Count (true, predicted) pairs: row = true class, column = predicted class.

    Shape:
        preds, targets: `(N,)` integer class indices; returns int64 `(K, K)` with K = num_classes.
    """
    index = targets.long().cpu() * num_classes + preds.long().cpu()  # (N,)
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)
