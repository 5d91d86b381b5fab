"""DigitsDataModule: shapes, value range, a fixed stratified split, augmentation on train only."""

import numpy as np
import pytest
import torch

from cnnexp.data.digits import DigitsDataModule
from cnnexp.data.splits import stratified_split
from cnnexp.errors import ConfigError


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


def test_image_size_upsamples_every_split_once():
    small, large = DigitsDataModule(seed=3), DigitsDataModule(seed=3, image_size=32)
    assert large.input_shape == (1, 32, 32)
    small.setup()
    large.setup()
    x, _ = next(iter(large.train_dataloader()))
    assert x.shape == (32, 1, 32, 32)
    for a, b in [(small.train_set, large.train_set), (small.test_set, large.test_set)]:
        assert torch.equal(a.labels, b.labels) and b.images.shape[1:] == (1, 32, 32)
        assert b.images.min() >= 0 and b.images.max() <= 255
        # the same digits: each 4x4 block's mean follows the original pixel (a shuffled control does not)
        blocks = torch.nn.functional.avg_pool2d(b.images, 4).flatten()  # (N * 64,)
        assert torch.corrcoef(torch.stack([blocks, a.images.flatten()]))[0, 1] > 0.9
        assert torch.corrcoef(torch.stack([blocks, a.images.roll(1, 0).flatten()]))[0, 1] < 0.7


@pytest.mark.parametrize("image_size", [0, 2.5, "big"])
def test_image_size_must_be_a_positive_int(image_size):
    with pytest.raises(ConfigError, match="data.image_size"):
        DigitsDataModule(image_size=image_size)


class Recorder:
    """A batch transform that marks what it saw (adds 1000) and counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return x + 1000


def test_batch_augment_changes_training_batches_only(tmp_path):
    import lightning as L

    recorder = Recorder()
    dm = DigitsDataModule(batch_size=64, batch_augment=recorder)
    seen = {"train": [], "val": []}

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            seen["train"].append(float(batch[0].min()))
            return (self.w * batch[0].mean()).sum()

        def validation_step(self, batch, _):
            seen["val"].append(float(batch[0].max()))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=2, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1, default_root_dir=tmp_path)
    trainer.fit(Probe(), datamodule=dm)
    assert recorder.calls == 3 and all(v >= 1000 for v in seen["train"])
    assert len(seen["val"]) == 2 and all(v <= 255 for v in seen["val"])


def test_batch_augment_must_be_callable():
    with pytest.raises(ConfigError, match="data.batch_augment"):
        DigitsDataModule(batch_augment="light")
