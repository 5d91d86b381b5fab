"""Keras-style augmentation: the flowers recipe, reflection at the borders, presets, workers."""

import pickle

import pytest
import torch
from torchvision.transforms import v2

from cnnexp.data.augment import AUGMENT_PRESETS, ReflectBorder, keras_augment, resolve_augment
from cnnexp.data.image_folder import ImageFolderDataModule
from cnnexp.errors import ConfigError


def parts(transform):
    """The flat list of v2 transforms inside a keras_augment result."""
    out = []
    for t in getattr(transform, "transforms", [transform]):
        out.extend(parts(t.transform) if isinstance(t, ReflectBorder) else [t])
    return out


def test_flowers_preset_is_the_tutorial_recipe():
    steps = parts(resolve_augment("flowers"))
    flip, affine = steps
    assert isinstance(flip, v2.RandomHorizontalFlip)
    assert isinstance(affine, v2.RandomAffine)
    assert list(affine.degrees) == [-36.0, 36.0]  # Keras RandomRotation(0.1): +-0.1 * 2 pi
    assert tuple(affine.scale) == (0.9, 1.1)  # Keras RandomZoom(0.1)
    assert affine.interpolation == v2.InterpolationMode.BILINEAR


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("preset", sorted(AUGMENT_PRESETS))
def test_reflect_fill_never_brings_in_black_corners(dtype, preset):
    torch.manual_seed(0)
    transform = resolve_augment(preset)
    image = torch.full((3, 20, 16), 200, dtype=dtype)
    for _ in range(8):
        out = transform(image)
        assert out.shape == image.shape and out.dtype == dtype
        assert out.min() >= 199  # a constant image stays constant: no outside pixels were sampled


def test_constant_fill_mode_fills_the_corners():
    torch.manual_seed(0)
    transform = keras_augment(flip=None, rotation=0.1, zoom=0.1, fill_mode="constant", fill=0)
    outs = [transform(torch.full((1, 32, 32), 200, dtype=torch.uint8)) for _ in range(10)]
    assert any(o.min() == 0 for o in outs)


def test_horizontal_flip_alone_flips_or_keeps():
    image = torch.arange(12, dtype=torch.uint8).reshape(1, 3, 4)
    transform = keras_augment(flip="horizontal", rotation=0, zoom=0)
    seen = {tuple(transform(image).flatten().tolist()) for _ in range(30)}
    assert seen == {tuple(image.flatten().tolist()), tuple(image.flip(-1).flatten().tolist())}
    assert isinstance(keras_augment(flip=None, rotation=0, zoom=0), v2.Identity)


@pytest.mark.parametrize("value, words", [("heavy", "choose none, flowers, light"), (3, "callable")])
def test_bad_augment_values(value, words):
    with pytest.raises(ConfigError, match=words):
        resolve_augment(value)


@pytest.mark.parametrize("kwargs, words", [({"flip": "diagonal"}, "flip"), ({"fill_mode": "wrap"}, "fill_mode"),
                                           ({"zoom": 1.5}, "zoom")])
def test_bad_keras_augment_arguments(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        keras_augment(**kwargs)


def test_none_means_no_augmentation():
    assert resolve_augment(None) is None and resolve_augment("none") is None


def test_augmented_training_in_worker_processes(image_tree):
    root = image_tree({"a": 6, "b": 6}, size=(30, 40))
    dm = ImageFolderDataModule(str(root), image_size=(24, 24), batch_size=4, augment="flowers", num_workers=2,
                               persistent_workers=True)
    pickle.loads(pickle.dumps(dm))
    loader = dm.train_dataloader()
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        batches = list(loader)
        assert sum(len(y) for _, y in batches) == len(dm.train_set)
        assert all(x.dtype == torch.float32 and x.shape[1:] == (3, 24, 24) for x, _ in batches)
