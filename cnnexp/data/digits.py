"""scikit-learn's handwritten digits (1,797 real 8x8 images shipped inside scikit-learn): the default data set."""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnexp.data.augment import resolve_augment
from cnnexp.data.base import BaseDataModule, check_fraction
from cnnexp.data.splits import stratified_split
from cnnexp.data.tensor_dataset import ImageTensorDataset

DIGITS_SCALE = 255.0 / 16.0  # load_digits pixels are 0..16; the model's Rescaling expects 0..255


class DigitsDataModule(BaseDataModule):
    """`sklearn.datasets.load_digits`: 1,797 gray 8x8 digits, 10 classes, a fixed stratified 70/15/15 split.

    Pixels (0..16) are scaled to 0..255 float32 so that the model's `Rescaling(1/255)` sees the same range as
    for image files. Works offline (the data ship inside scikit-learn).

    Args:
        val_fraction: share of the 1,797 images for validation (default 0.15).
        test_fraction: share for test (default 0.15); the rest (70%) trains.
        augment: transform of training images only (off by default): a preset name ("light": small
            rotations, zooms and shifts), a callable, or None.
        batch_size, num_workers, pin_memory, persistent_workers, seed: see `BaseDataModule`.

    Shape:
        - batch: `x (N, 1, 8, 8)` float32 in 0..255, `y (N,)` int64.
    """

    def __init__(self, batch_size: int = 32, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 42, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, augment: Callable | str | None = None) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed)
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        check_fraction("val_fraction + test_fraction", self.val_fraction + self.test_fraction)
        self.augment = resolve_augment(augment)
        self.input_shape = (1, 8, 8)
        self.num_classes = 10
        self.class_names = [str(d) for d in range(10)]

    def build_datasets(self) -> tuple[ImageTensorDataset, ImageTensorDataset, ImageTensorDataset]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images).to(torch.float32).unsqueeze(1) * DIGITS_SCALE  # (1797, 1, 8, 8)
        labels = torch.from_numpy(digits.target).to(torch.int64)  # (1797,)
        train, val, test = stratified_split(digits.target, self.val_fraction, self.test_fraction, self.seed)
        return (ImageTensorDataset(images[train], labels[train], self.augment),
                ImageTensorDataset(images[val], labels[val]),
                ImageTensorDataset(images[test], labels[test]))
