"""An in-memory image data set: one tensor of images, one of labels, an optional per-sample transform."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset


class ImageTensorDataset(Dataset):
    """Serves `(image float32 (C, H, W) in 0..255, label int64)` from tensors held in memory.

    The images are stored once (uint8 for decoded image files, float32 for data such as digits) and never
    decoded again: an epoch is only indexing, the optional `transform` (augmentation, training set only)
    and a cast to float32.

    Args:
        images: `(N, C, H, W)` tensor, values in 0..255 (uint8 or float).
        labels: `(N,)` integer tensor.
        transform: callable on one `(C, H, W)` image tensor (e.g. torchvision.transforms.v2), or None.

    Shape:
        - item: `x (C, H, W)` float32, `y ()` int64.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None) -> None:
        if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"images must be (N, C, H, W) and labels (N,), got {tuple(images.shape)} "
                             f"and {tuple(labels.shape)}")
        self.images = images  # (N, C, H, W)
        self.labels = labels.to(torch.int64)  # (N,)
        self.transform = transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[index]  # (C, H, W)
        if self.transform is not None:
            x = self.transform(x)
        return x.to(torch.float32), self.labels[index]
