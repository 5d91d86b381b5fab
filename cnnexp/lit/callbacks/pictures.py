"""Pure tensor functions that turn weights and activations into images for TensorBoard.

Every function takes and returns plain tensors (no Lightning, no text), so the callback in
`tensorboard_pictures.py` stays a thin dispatcher and these can be tested on their own; grids are
`torchvision.utils.make_grid` with coloured separators. Images are channels-first floats in [0, 1]:
one image `(C, H, W)`, a batch `(N, C, H, W)`.
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


PAD_COLOUR = (0.95, 0.55, 0.1)  # orange: seen next to both light and dark gray tiles


def to_rgb(images: Tensor) -> Tensor:
    """Gray images as RGB (the channel repeated); RGB images unchanged.

    Shape:
        images: `(N, 1 or 3, H, W)`; returns `(N, 3, H, W)`.
    """
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def grid_columns(n: int) -> int:
    """Tiles per row for `n` tiles: a divisor of n between sqrt(n) and 2 sqrt(n) when there is one (a full
    rectangle, e.g. 8 x 4 for 32), else `ceil(sqrt(n))` (a near-square grid)."""
    root = math.sqrt(n)
    return next((d for d in range(math.ceil(root), int(2 * root) + 1) if n % d == 0), math.ceil(root))


def grid(images: Tensor, ncols: int | None = None, padding: int = 3,
         pad_colour: tuple[float, float, float] = PAD_COLOUR) -> Tensor:
    """`torchvision.utils.make_grid` with coloured separators; empty slots of the last row are white.

    A gray separator vanishes next to tiles of its own shade; a colour is seen next to any gray tile.

    Args:
        images: the tiles, floats in [0, 1].
        ncols: tiles per row; default `grid_columns(N)`.
        padding: separator width in pixels (also around the grid).
        pad_colour: the separator's RGB colour.

    Shape:
        images: `(N, C, h, w)` with C = 1 or 3; returns `(3, rows * (h + p) + p, ncols * (w + p) + p)`.
    """
    from torchvision.utils import make_grid

    n, _, h, w = images.shape
    ncols = min(n, ncols or grid_columns(n))
    images = to_rgb(images.float())
    if n == 1:  # make_grid returns a lone image without its border
        out = torch.nn.functional.pad(images[0], [padding] * 4, value=-1.0)  # (3, H, W)
    else:
        out = make_grid(images, nrow=ncols, padding=padding, pad_value=-1.0)  # (3, H, W)
    for i in range(n, math.ceil(n / ncols) * ncols):  # the empty slots
        top, left = padding + (i // ncols) * (h + padding), padding + (i % ncols) * (w + padding)
        out[:, top : top + h, left : left + w] = 1.0
    pad = (out == -1.0).all(dim=0)  # (H, W): the separators (tiles hold values in [0, 1])
    return torch.where(pad, torch.tensor(pad_colour).view(3, 1, 1), out)


def filters_grid(weight: Tensor, min_size: int = 48) -> Tensor:
    """Show a conv layer's kernels, one tile per output filter, each scaled to [0, 1] on its own.

    With 3 input channels a tile is an RGB picture of the kernel; otherwise it is the kernel averaged
    over its input channels (for the first layer on gray images that is the kernel itself). A 3x3 kernel
    becomes a 48-pixel tile of 16-pixel blocks: 16 filters make a 4x4 grid of 207 pixels, readable at
    TensorBoard's default card size.

    Shape:
        weight: `(C_out, C_in, kH, kW)`; returns `(3, H, W)`.
    """
    w = weight.detach().float().cpu()
    tiles = w if w.shape[1] == 3 else w.mean(dim=1, keepdim=True)  # (C_out, 3|1, kH, kW)
    return grid(upscale(normalize01(tiles), min_size))


def feature_maps_grid(feature_maps: Tensor, max_maps: int = 32, min_size: int = 48) -> Tensor:
    """Show the first `max_maps` channels of one image's activations as gray tiles ("feature maps").

    Shape:
        feature_maps: `(C, H, W)`; returns `(3, H', W')`.
    """
    maps = feature_maps.detach().float().cpu()[:max_maps].unsqueeze(1)  # (C', 1, H, W)
    return grid(upscale(normalize01(maps), min_size), padding=2)
