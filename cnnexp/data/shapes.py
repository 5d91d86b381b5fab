"""A procedurally generated teaching set: oriented lines and outlined shapes (the lecture's feature detectors)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from cnnexp.data.augment import resolve_augment
from cnnexp.data.base import BaseDataModule, check_int
from cnnexp.data.shapes_render import SHAPE_NAMES, draw
from cnnexp.data.tensor_dataset import ImageTensorDataset
from cnnexp.errors import ConfigError


def generate(classes: Sequence[str], n: int, size: int, channels: int, noise: float,
             seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random images, classes balanced, everything drawn from `torch.Generator().manual_seed(seed)`.

    Each image: one shape at a random position and size (a half-size of 20-40% of the image), random stroke
    width (1-2 px at 28x28) and brightness (60-100%), plus Gaussian noise of std `noise * 255`. With several
    channels each channel gets its own brightness (a coloured stroke).

    Returns:
        images `(n, channels, size, size)` uint8 and labels `(n,)` int64.
    """
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(classes))[torch.randperm(n, generator=g)]  # (n,)
    half = size * (0.2 + 0.2 * torch.rand(n, generator=g))  # (n,)
    margin = half + 1.0
    centre = margin[:, None] + torch.rand(n, 2, generator=g) * (size - 2 * margin[:, None])  # (n, 2)
    thickness = (size / 28.0) * (1.0 + torch.rand(n, generator=g))  # (n,)
    brightness = 0.6 + 0.4 * torch.rand(n, channels, generator=g)  # (n, C)
    strokes = torch.zeros(n, size, size)  # (n, H, W)
    for k, name in enumerate(classes):
        rows = (labels == k).nonzero().squeeze(1)
        if len(rows):
            strokes[rows] = draw(name, centre[rows], half[rows], thickness[rows], size)
    images = strokes[:, None] * brightness[:, :, None, None] * 255.0  # (n, C, H, W)
    images = images + noise * 255.0 * torch.randn(images.shape, generator=g)
    return images.round().clamp(0, 255).to(torch.uint8), labels


class ShapesDataModule(BaseDataModule):
    """Oriented lines (horizontal, vertical, diagonal_up "/", diagonal_down "\\") and outlined shapes
    (square, circle, cross "+", triangle), randomly placed and sized, with noise; deterministic from `seed`.

    Small and fast (4,000 + 800 + 800 images of 1x28x28 in well under a second), which makes it good for tests
    and for showing what the first convolution's filters learn (edge and orientation detectors).

    Args:
        image_size: height = width (>= 12).
        channels: 1 (gray) or 3 (a random colour per image).
        num_train, num_val, num_test: images per split (generated independently from the seed).
        classes: a subset of the eight names (default all), e.g. only the four lines.
        noise: standard deviation of the Gaussian pixel noise, as a fraction of 255.
        augment: transform of training images `(C, H, W)` uint8: a preset ("flowers", "light"), a
            callable (e.g. `cnnexp.data.augment.keras_augment(...)`), or None.
        batch_size, num_workers, pin_memory, persistent_workers, seed: see `BaseDataModule`.

    Shape:
        - batch: `x (N, channels, image_size, image_size)` float32 in 0..255, `y (N,)` int64.
    """

    def __init__(self, image_size: int = 28, channels: int = 1, num_train: int = 4000, num_val: int = 800,
                 num_test: int = 800, classes: Sequence[str] | None = None, noise: float = 0.1,
                 augment: Callable | str | None = None, batch_size: int = 32, num_workers: int = 0,
                 pin_memory: bool = False, persistent_workers: bool = False, seed: int = 42) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed)
        self.image_size = check_int("image_size", image_size, minimum=12)
        self.channels = check_int("channels", channels)
        if self.channels not in (1, 3):
            raise ConfigError(f"data.channels={channels!r} is invalid: choose 1 or 3.")
        self.sizes = tuple(check_int(k, v) for k, v in
                           (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)))
        classes = list(classes) if classes is not None else list(SHAPE_NAMES)
        unknown = [c for c in classes if c not in SHAPE_NAMES]
        if unknown or len(classes) < 2 or len(set(classes)) != len(classes):
            raise ConfigError(f"data.classes={classes!r} is invalid: choose at least two different names from "
                              f"{', '.join(SHAPE_NAMES)}.")
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < 1:
            raise ConfigError(f"data.noise={noise!r} is invalid: expected a number in [0, 1).")
        self.noise = float(noise)
        self.augment = resolve_augment(augment)
        self.class_names = classes
        self.num_classes = len(classes)
        self.input_shape = (self.channels, self.image_size, self.image_size)

    def build_datasets(self) -> tuple[ImageTensorDataset, ImageTensorDataset, ImageTensorDataset]:
        sets = []
        for split, n in enumerate(self.sizes):  # independent streams: seed*3 + split
            images, labels = generate(self.class_names, n, self.image_size, self.channels, self.noise,
                                      self.seed * 3 + split)
            sets.append(ImageTensorDataset(images, labels, self.augment if split == 0 else None))
        return sets[0], sets[1], sets[2]
