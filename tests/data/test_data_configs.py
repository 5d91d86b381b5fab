"""Every file of the `data` config group instantiates (with `_target_`) and yields contract batches."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import cnnexp

CONF = Path(cnnexp.__file__).parent / "conf" / "data"

SETUPS = {  # config name -> (writes its files under data_dir, overrides, input shape)
    "digits": (lambda d, f: None, {}, (1, 32, 32)),
    "image_folder": (lambda d, f: f.make_tree(d / "flower_photos", {"daisy": 6, "roses": 5, "tulips": 5}),
                     {"image_size": [20, 24], "augment": "flowers"}, (3, 20, 24)),
    "mnist": (lambda d, f: f.write_mnist(d, "MNIST"), {}, (1, 28, 28)),
    "fashion_mnist": (lambda d, f: f.write_mnist(d, "FashionMNIST"), {}, (1, 28, 28)),
    "cifar10": (lambda d, f: f.write_cifar(d), {}, (3, 32, 32)),
    "shapes": (lambda d, f: None, {"num_train": 64, "num_val": 16, "num_test": 16}, (1, 28, 28)),
    "random": (lambda d, f: None, {"image_size": [12, 10], "num_train": 16, "num_eval": 8}, (3, 12, 10)),
}


def test_every_config_file_is_covered():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(SETUPS)


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_config_instantiates_and_yields_batches(tmp_path, formats, name):
    write, overrides, shape = SETUPS[name]
    write(tmp_path, formats)
    root = OmegaConf.create({"paths": {"data_dir": str(tmp_path)}, "seed": 7,
                             "data": OmegaConf.load(CONF / f"{name}.yaml")})
    root.data.batch_size = 8
    for key, value in overrides.items():
        root.data[key] = value
    dm = instantiate(root.data)
    assert dm.input_shape == shape and dm.num_classes == len(dm.class_names) >= 2
    assert OmegaConf.to_container(root.data, resolve=True)["batch_size"] == 8
    dm.setup()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        x, y = next(iter(loader))
        assert x.shape[1:] == shape and x.dtype == torch.float32 and y.dtype == torch.int64


def test_image_folder_defaults_are_the_lecture_recipe():
    cfg = OmegaConf.load(CONF / "image_folder.yaml")
    assert (list(cfg.image_size), cfg.batch_size, cfg.validation_split, cfg.seed) == ([180, 180], 32, 0.2, 123)
    assert OmegaConf.to_container(cfg)["data_dir"] == "${paths.data_dir}/flower_photos"
    for name in ("mnist", "fashion_mnist", "cifar10"):
        cfg = OmegaConf.load(CONF / f"{name}.yaml")
        assert cfg.download is False and OmegaConf.to_container(cfg)["data_dir"] == "${paths.data_dir}"


def test_random_images_are_uint8_pixels_drawn_from_the_seed():
    from cnnexp.data.random_images import RandomImagesDataModule

    first, again, other = (RandomImagesDataModule(image_size=6, num_train=4, num_eval=2, seed=s) for s in (1, 1, 2))
    for dm in (first, again, other):
        dm.setup()
    assert first.train_set.images.dtype == torch.uint8 and first.train_set.images.shape == (4, 3, 6, 6)
    assert torch.equal(first.train_set.images, again.train_set.images)
    assert not torch.equal(first.train_set.images, other.train_set.images)
    assert len(first.val_set) == len(first.test_set) == 2
