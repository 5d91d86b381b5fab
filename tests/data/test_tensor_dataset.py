"""ImageTensorDataset through a DataLoader: a batch gathered at once equals the per-image path, dtype and all."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from cnnexp.data.tensor_dataset import GatheredBatch, ImageTensorDataset, collate_images


def batches(dataset: ImageTensorDataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = DataLoader(dataset, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3),
                        collate_fn=collate_images)
    return list(loader)


def test_gathered_batches_equal_the_per_image_path():
    images = torch.randint(0, 256, (10, 3, 5, 6), dtype=torch.uint8)
    labels = torch.arange(10) % 3
    gathered = batches(ImageTensorDataset(images, labels))
    one_by_one = batches(ImageTensorDataset(images, labels, transform=lambda x: x))  # a transform: per image
    assert isinstance(ImageTensorDataset(images, labels).__getitems__([1, 2]), GatheredBatch)
    assert len(gathered) == len(one_by_one) == 3
    for (x, y), (x1, y1) in zip(gathered, one_by_one):
        assert x.dtype == x1.dtype == torch.float32 and y.dtype == y1.dtype == torch.int64
        torch.testing.assert_close(x, x1, rtol=0, atol=0)
        torch.testing.assert_close(y, y1, rtol=0, atol=0)
