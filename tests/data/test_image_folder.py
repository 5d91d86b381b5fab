"""ImageFolderDataModule: Keras split, decode once, cache file, resize, augmentation on train only."""

import os
import pickle

import pytest
import torch

from cnnexp.data import image_cache
from cnnexp.data.augment import keras_augment
from cnnexp.data.folder_index import index_directory, split_files
from cnnexp.data.image_decode import load_image
from cnnexp.data.image_folder import ImageFolderDataModule
from cnnexp.errors import ConfigError


def module(root, **kwargs):
    kwargs.setdefault("image_size", (16, 20))
    kwargs.setdefault("batch_size", 4)
    return ImageFolderDataModule(str(root), **kwargs)


def test_metadata_right_after_construction_without_decoding(image_tree, monkeypatch):
    root = image_tree({"daisy": 6, "roses": 5, "tulips": 4})
    monkeypatch.setattr(image_cache, "load_image", lambda *a: pytest.fail("decoded in __init__"))
    dm = module(root, image_size=(180, 180))
    assert dm.input_shape == (3, 180, 180) and dm.num_classes == 3
    assert dm.class_names == ["daisy", "roses", "tulips"]
    assert module(root, color_mode="grayscale").input_shape == (1, 16, 20)


def test_splits_hold_the_keras_files_and_the_decoded_pixels(image_tree):
    root = image_tree({"a": 9, "b": 8, "c": 8})
    dm = module(root, seed=123)
    dm.setup()
    index = index_directory(str(root))
    split = split_files(index.paths, index.labels, 0.2, 123)
    assert len(dm.val_set) == 5 and len(dm.train_set) == 20 and dm.test_set is dm.val_set
    expected = torch.stack([load_image(p, (16, 20)) for p in split.val_paths])  # (5, 3, 16, 20)
    assert torch.equal(dm.val_set.images, expected)
    assert dm.val_set.labels.tolist() == split.val_labels
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 16, 20) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert dm.train_set.images.dtype == torch.uint8  # cached as uint8


def test_epochs_after_setup_never_decode(image_tree, monkeypatch):
    dm = module(image_tree({"a": 5, "b": 5}))
    dm.setup()
    monkeypatch.setattr(image_cache, "load_image", lambda *a: pytest.fail("decoded again"))
    from PIL import Image
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("opened an image file again"))
    for epoch in range(2):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        assert sum(len(y) for _, y in loader) == len(dm.train_set)


def test_resize_is_bilinear_half_pixel_without_antialias():
    image = torch.arange(16, dtype=torch.uint8).reshape(1, 4, 4) * 10  # (1, 4, 4)
    from cnnexp.data.image_decode import resize_uint8
    out = resize_uint8(image, (2, 2))
    # half-pixel centres, no antialias: output pixel (0, 0) samples input (0.5, 0.5) = mean of the top-left 2x2
    assert out.tolist() == [[[25, 45], [105, 125]]]
    assert resize_uint8(image, (4, 4)) is image


def test_disk_cache_is_reused_and_refreshed_when_files_change(image_tree, monkeypatch, tmp_path):
    root = image_tree({"a": 5, "b": 5})
    cache_dir = tmp_path / "cache"
    dm = module(root, cache="disk", cache_dir=str(cache_dir))
    dm.prepare_data()
    dm.setup()
    files = list(cache_dir.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    calls = []
    real = image_cache.load_image
    monkeypatch.setattr(image_cache, "load_image", lambda *a: calls.append(a) or real(*a))
    again = module(root, cache="disk", cache_dir=str(cache_dir))
    again.setup()
    assert calls == [] and torch.equal(again.train_set.images, dm.train_set.images)
    (root / "a" / "img0.jpg").write_bytes((root / "b" / "img0.jpg").read_bytes())  # content + mtime change
    os.utime(root / "a" / "img0.jpg", ns=(1, 1))
    module(root, cache="disk", cache_dir=str(cache_dir)).setup()
    assert len(calls) == 10  # key changed: decoded again


def test_separate_test_folder(image_tree, tmp_path):
    root = image_tree({"a": 5, "b": 5})
    test_root = image_tree({"a": 2, "b": 3}, name="test")
    dm = module(root, test_dir=str(test_root))
    dm.setup()
    assert len(dm.test_set) == 5 and dm.test_set.labels.tolist() == [0, 0, 1, 1, 1]


def test_augment_runs_on_training_images_only_and_keeps_dtype(image_tree):
    dm = module(image_tree({"a": 5, "b": 5}), augment=keras_augment())
    dm.setup()
    torch.manual_seed(0)
    x, _ = dm.train_set[0]
    assert x.shape == (3, 16, 20) and x.dtype == torch.uint8  # augmented as uint8, cast per batch
    assert not torch.equal(x, dm.train_set.images[0])  # rotated / zoomed / flipped
    assert dm.val_set.transform is None
    assert torch.equal(dm.val_set[0][0], dm.val_set.images[0])
    pickle.loads(pickle.dumps(dm))  # DDP spawn and joblib pickle the data module


BAD_ARGS = [({"image_size": [0, 5]}, "data.image_size"), ({"image_size": "big"}, "data.image_size"),
            ({"validation_split": 1.0}, "data.validation_split"), ({"cache": "ram"}, "data.cache"),
            ({"color_mode": "cmyk"}, "data.color_mode"), ({"batch_size": -1}, "data.batch_size")]


@pytest.mark.parametrize("kwargs, key", BAD_ARGS)
def test_bad_arguments(image_tree, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        module(image_tree({"a": 5, "b": 5}), **kwargs)


@pytest.mark.parametrize("shape, size", [((3, 240, 320), (180, 180)), ((1, 7, 5), (16, 11)), ((4, 33, 17), (8, 30))])
def test_resize_matches_torch_bilinear_half_pixel(shape, size):
    from cnnexp.data.image_decode import resize_uint8

    image = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ours = resize_uint8(image, size)
    exact = torch.nn.functional.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False,
                                            antialias=False)[0]  # (C, h, w) float
    assert ours.shape == (shape[0], *size) and ours.dtype == torch.uint8
    error = (ours.float() - exact).abs()
    assert error.max() <= 0.5 + 0.01  # rounding, plus torch's float32 source coordinates (ours are float64)
