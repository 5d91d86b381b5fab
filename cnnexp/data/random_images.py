"""Random uint8 images with random labels, held in memory: a data set for speed measurements, not for learning."""

from __future__ import annotations

import torch

from cnnexp.data.base import BaseDataModule, check_int, check_size
from cnnexp.data.tensor_dataset import ImageTensorDataset


class RandomImagesDataModule(BaseDataModule):
    """`num_train` random RGB (or `channels`) images of `image_size`, drawn once from the seed, stored as uint8.

    Used by scripts/bench_train.py to time the real training path (DataModule -> DataLoader -> LightningModule)
    with no decoding cost, the way the lecture's images look after the image cache (uint8 in memory).

    Args:
        image_size: `[H, W]` (or one int for a square).
        channels: image channels (3 = RGB).
        num_classes: labels are drawn uniformly from `0..num_classes-1`.
        num_train: training images; validation and test get `num_eval` each.
        num_eval: validation (and test) images.
        batch_size, num_workers, pin_memory, persistent_workers, seed: see `BaseDataModule`.

    Shape:
        - batch: `x (N, channels, H, W)` float32 in 0..255, `y (N,)` int64.
    """

    def __init__(self, image_size: int | list[int] = 180, channels: int = 3, num_classes: int = 5,
                 num_train: int = 256, num_eval: int = 64, batch_size: int = 32, num_workers: int = 0,
                 pin_memory: bool = False, persistent_workers: bool = False, seed: int = 42) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed)
        height, width = check_size("image_size", image_size)
        self.input_shape = (check_int("channels", channels), height, width)
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.num_train = check_int("num_train", num_train)
        self.num_eval = check_int("num_eval", num_eval)
        self.class_names = [str(k) for k in range(self.num_classes)]

    def build_datasets(self) -> tuple[ImageTensorDataset, ImageTensorDataset, ImageTensorDataset]:
        gen = torch.Generator().manual_seed(self.seed)
        sizes = (self.num_train, self.num_eval, self.num_eval)
        images = torch.randint(0, 256, (sum(sizes), *self.input_shape), generator=gen, dtype=torch.uint8)
        labels = torch.randint(0, self.num_classes, (sum(sizes),), generator=gen)
        parts = zip(images.split(sizes), labels.split(sizes))  # views of one tensor each: nothing is copied
        return tuple(ImageTensorDataset(x, y) for x, y in parts)  # type: ignore[return-value]
