"""An in-memory image data set: one tensor of images, one of labels, an optional per-sample transform."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from cnnexp.data.huge_pages import in_huge_pages


class GatheredBatch(NamedTuple):
    """A batch taken in one indexing operation (`ImageTensorDataset.__getitems__`), before `collate_images`.

    Shape: images `(N, C, H, W)` in the stored dtype, labels `(N,)` int64.
    """

    images: torch.Tensor
    labels: torch.Tensor


def collate_images(batch: list[tuple[torch.Tensor, torch.Tensor]] | GatheredBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack samples into `(x (N, C, H, W) float32, y (N,) int64)`, casting once per batch.

    Samples travel from DataLoader workers as uint8 (4x less to copy) and are cast in one large operation
    instead of one small one per image. A `GatheredBatch` is already stacked: only the cast is left.
    """
    if isinstance(batch, GatheredBatch):
        return batch.images.to(torch.float32), batch.labels
    images, labels = zip(*batch)
    y = torch.stack(labels) if isinstance(labels[0], torch.Tensor) else torch.tensor(labels)
    return torch.stack(images).to(torch.float32), y.to(torch.int64)


class ImageTensorDataset(Dataset):
    """Serves `(image (C, H, W) in 0..255, label int64)` from tensors held in memory.

    The images are stored once (uint8 for decoded image files, float32 for data such as digits) and never
    decoded again: an epoch is only indexing and the optional `transform` (augmentation, training set only).
    Items keep the stored dtype; `collate_images` (used by every data module's loaders) makes float32 batches.

    Args:
        images: `(N, C, H, W)` tensor, values in 0..255 (uint8 or float).
        labels: `(N,)` integer tensor.
        transform: callable on one `(C, H, W)` image tensor (e.g. torchvision.transforms.v2), or None.

    Shape:
        - item: `x (C, H, W)` (stored dtype), `y ()` int64.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None) -> None:
        if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"images must be (N, C, H, W) and labels (N,), got {tuple(images.shape)} "
                             f"and {tuple(labels.shape)}")
        self.images = in_huge_pages(images)  # (N, C, H, W); a large set in huge pages: cheaper random batches
        self.labels = labels.to(torch.int64)  # (N,)
        self.transform = transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[index]  # (C, H, W)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]] | GatheredBatch:
        """A DataLoader batch: without a transform, one gather of all `indices` (no per-image indexing and
        stacking; `index_select` copies whole images, where advanced indexing `images[index]` went element by
        element, several times slower); with one, the samples one by one."""
        if self.transform is not None:
            return [self[i] for i in indices]
        index = torch.as_tensor(indices, dtype=torch.int64)
        return GatheredBatch(self.images.index_select(0, index), self.labels.index_select(0, index))
