"""DigitsDataModule: shapes, value range, a fixed stratified split, augmentation on train only."""

import numpy as np
import torch

from cnnexp.data.digits import DigitsDataModule
from cnnexp.data.splits import stratified_split


def test_metadata_is_known_without_loading():
    dm = DigitsDataModule()
    assert dm.train_set is None
    assert dm.input_shape == (1, 8, 8) and dm.num_classes == 10
    assert dm.class_names == [str(i) for i in range(10)]


def test_batches_follow_the_contract():
    dm = DigitsDataModule(batch_size=16)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (16,) and y.dtype == torch.int64
    images = torch.cat([x for x, _ in dm.test_dataloader()])
    assert images.min() == 0 and images.max() == 255  # 0..16 scaled to 0..255


def test_split_is_a_stratified_partition_fixed_by_the_seed():
    dm = DigitsDataModule(seed=11)
    dm.setup()
    sizes = [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)]
    assert sum(sizes) == 1797 and sizes == [1257, 270, 270]
    for part in (dm.val_set, dm.test_set):  # every class in every split, in proportion (~27 each)
        counts = torch.bincount(part.labels, minlength=10)
        assert counts.min() >= 24 and counts.max() <= 30
    again = DigitsDataModule(seed=11)
    again.setup()
    assert torch.equal(again.test_set.images, dm.test_set.images)
    other = DigitsDataModule(seed=12)
    other.setup()
    assert not torch.equal(other.test_set.images, dm.test_set.images)


def test_stratified_split_partitions_indices():
    labels = np.repeat(np.arange(4), 25)
    train, val, test = stratified_split(labels, 0.2, 0.2, seed=0)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))
    assert (len(train), len(val), len(test)) == (60, 20, 20)
    assert np.bincount(labels[val]).tolist() == [5, 5, 5, 5]


def test_augment_applies_to_training_images_only():
    flip = torch.flip
    dm = DigitsDataModule(augment=lambda img: flip(img, dims=[-1]))
    dm.setup()
    raw_x = dm.train_set.images[0]
    x, _ = dm.train_set[0]
    assert torch.equal(x, flip(raw_x, dims=[-1]))
    assert dm.val_set.transform is None and dm.test_set.transform is None
