"""Shared data-module plumbing: argument checks, loaders, the (seed, epoch) train order, pickling."""

import pickle

import pytest
import torch

from cnnexp.data.digits import DigitsDataModule
from cnnexp.data.sampler import EpochShuffleSampler
from cnnexp.errors import ConfigError

BAD_ARGS = [  # (kwargs, key that the message must name)
    ({"batch_size": -1}, "data.batch_size"),
    ({"batch_size": 0}, "data.batch_size"),
    ({"batch_size": 2.5}, "data.batch_size"),
    ({"num_workers": -2}, "data.num_workers"),
    ({"seed": -1}, "data.seed"),
    ({"val_fraction": 0.0}, "data.val_fraction"),
    ({"test_fraction": 1.5}, "data.test_fraction"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction + test_fraction"),
]


@pytest.mark.parametrize("kwargs, key", BAD_ARGS)
def test_bad_arguments_raise_config_error_naming_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace("+", r"\+")):
        DigitsDataModule(**kwargs)


def test_sampler_order_is_a_pure_function_of_seed_and_epoch():
    a, b = EpochShuffleSampler(50, seed=7), EpochShuffleSampler(50, seed=7)
    a.set_epoch(3)
    b.set_epoch(0)
    first = list(b)
    b.set_epoch(3)
    assert list(a) == list(b)  # same (seed, epoch), whatever happened before
    assert list(a) == list(a)  # re-iterating does not advance anything
    assert sorted(a) == list(range(50))
    assert list(a) != first  # a new epoch gives a new order
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(7 + 3)).tolist()
    assert list(a) == expected
    assert list(EpochShuffleSampler(50, seed=8)) != first


def test_sampler_survives_pickling_with_its_epoch():
    s = EpochShuffleSampler(20, seed=1)
    s.set_epoch(5)
    t = pickle.loads(pickle.dumps(s))
    assert list(t) == list(s) and t.epoch == 5


def test_loaders_use_the_epoch_sampler_and_fixed_eval_order():
    dm = DigitsDataModule(batch_size=64, seed=3)
    train = dm.train_dataloader()
    assert isinstance(train.sampler, EpochShuffleSampler)
    train.sampler.set_epoch(0)
    y0 = torch.cat([y for _, y in train])
    train.sampler.set_epoch(1)
    y1 = torch.cat([y for _, y in train])
    assert not torch.equal(y0, y1) and torch.equal(y0.sort().values, y1.sort().values)
    val1 = torch.cat([y for _, y in dm.val_dataloader()])
    val2 = torch.cat([y for _, y in dm.val_dataloader()])
    assert torch.equal(val1, val2)


def test_worker_flags_reach_the_dataloader():
    dm = DigitsDataModule(num_workers=2, pin_memory=True, persistent_workers=True)
    loader = dm.val_dataloader()
    assert (loader.num_workers, loader.pin_memory, loader.persistent_workers) == (2, True, True)
    # persistent_workers is meaningless without workers: it is dropped instead of failing in torch.
    assert DigitsDataModule(num_workers=0, persistent_workers=True).val_dataloader().persistent_workers is False


def test_data_module_pickles_before_and_after_setup():
    dm = DigitsDataModule(seed=5)
    clone = pickle.loads(pickle.dumps(dm))
    assert clone.input_shape == dm.input_shape and clone.seed == 5
    dm.setup()
    clone = pickle.loads(pickle.dumps(dm))
    assert torch.equal(clone.test_set.labels, dm.test_set.labels)


def test_importing_cnnexp_data_is_light():
    import subprocess
    import sys

    code = ("import sys, cnnexp.data; "
            "print(any(m in sys.modules for m in ('lightning', 'torchvision', 'sklearn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lightning_sets_the_epoch_so_each_epoch_order_is_f_of_seed_and_epoch(tmp_path):
    import lightning as L

    seen: list[list[int]] = []

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def on_train_epoch_start(self):
            seen.append([])

        def training_step(self, batch, _):
            seen[-1].extend(batch[1].tolist())
            return (self.w * batch[0].mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    dm = DigitsDataModule(batch_size=128, seed=9)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Probe(), datamodule=dm)
    labels = dm.train_set.labels
    for epoch, order in enumerate(seen):
        sampler = EpochShuffleSampler(len(labels), seed=9)
        sampler.set_epoch(epoch)
        assert order == labels[sampler.permutation()].tolist()
    assert seen[0] != seen[1]
