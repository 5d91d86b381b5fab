"""scikit-learn's handwritten digits (1,797 real 8x8 images shipped inside scikit-learn): the default data set."""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnexp.data.augment import resolve_augment
from cnnexp.data.base import BaseDataModule, check_fraction, check_int
from cnnexp.data.splits import stratified_split
from cnnexp.data.tensor_dataset import ImageTensorDataset

DIGITS_SCALE = 255.0 / 16.0  # load_digits pixels are 0..16; the model's Rescaling expects 0..255


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a batch to `size x size`, clamped to the input's value range.

    Shape:
        images: `(N, C, H, W)` float; returns `(N, C, size, size)`.
    """
    import torch.nn.functional as F

    resized = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                            antialias=size < max(images.shape[-2:]))
    return resized.clamp(float(images.min()), float(images.max()))


class DigitsDataModule(BaseDataModule):
    """`sklearn.datasets.load_digits`: 1,797 gray 8x8 digits, 10 classes, a fixed stratified 70/15/15 split.

    Pixels (0..16) are scaled to 0..255 float32 so that the model's `Rescaling(1/255)` sees the same range as
    for image files. Works offline (the data ship inside scikit-learn).

    Args:
        val_fraction: share of the 1,797 images for validation (default 0.15).
        test_fraction: share for test (default 0.15); the rest (70%) trains.
        augment: transform of training images only (off by default): a preset name ("light": small
            rotations, zooms and shifts), a callable, or None.
        batch_augment: transform of whole training batches `(N, C, H, W) -> (N, C, H, W)` applied after the
            batch reached its device (e.g. `cnnexp.data.batch_augment.BatchRandomAffine`), or None. Cheaper
            than `augment` on small images: one call per batch instead of one per image.
        image_size: side of the square images the model sees: the 8x8 digits are upsampled once (bilinear)
            to `image_size x image_size` when the data are loaded; None keeps 8x8. At 32x32 the lecture
            CNN's three poolings leave 4x4 maps instead of 1x1.
        batch_size, num_workers, pin_memory, persistent_workers, seed: see `BaseDataModule`.

    Shape:
        - batch: `x (N, 1, S, S)` float32 in 0..255, `y (N,)` int64, with `S = image_size` (8 when None).
    """

    def __init__(self, batch_size: int = 32, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 42, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, augment: Callable | str | None = None,
                 batch_augment: Callable | None = None, image_size: int | None = None) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed)
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        check_fraction("val_fraction + test_fraction", self.val_fraction + self.test_fraction)
        self.augment = resolve_augment(augment)
        if batch_augment is not None and not callable(batch_augment):
            from cnnexp.errors import ConfigError

            raise ConfigError(f"data.batch_augment={batch_augment!r} is not callable. Fix: give a transform config "
                              "with _target_ (e.g. cnnexp.data.batch_augment.BatchRandomAffine) or null.")
        self.batch_augment = batch_augment
        self.image_size = None if image_size is None else check_int("image_size", image_size)
        side = self.image_size or 8
        self.input_shape = (1, side, side)
        self.num_classes = 10
        self.class_names = [str(d) for d in range(10)]

    def build_datasets(self) -> tuple[ImageTensorDataset, ImageTensorDataset, ImageTensorDataset]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images).to(torch.float32).unsqueeze(1) * DIGITS_SCALE  # (1797, 1, 8, 8)
        if self.image_size is not None and self.image_size != 8:
            images = upsample(images, self.image_size)  # (1797, 1, S, S)
        labels = torch.from_numpy(digits.target).to(torch.int64)  # (1797,)
        train, val, test = stratified_split(digits.target, self.val_fraction, self.test_fraction, self.seed)
        return (ImageTensorDataset(images[train], labels[train], self.augment),
                ImageTensorDataset(images[val], labels[val]),
                ImageTensorDataset(images[test], labels[test]))

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, torch.Tensor],
                                dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply `batch_augment` to training batches, on their device (validation and test batches pass as is)."""
        trainer = self.trainer
        if self.batch_augment is None or trainer is None or not trainer.training:
            return batch
        x, y = batch  # (N, C, H, W), (N,)
        return self.batch_augment(x), y
