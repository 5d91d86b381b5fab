"""ShapesDataModule: deterministic from the seed, balanced, the contract's shapes, learnable."""

import pytest
import torch

from cnnexp.data.shapes import ShapesDataModule, generate
from cnnexp.data.shapes_render import SHAPE_NAMES, draw
from cnnexp.errors import ConfigError


def small(**kwargs):
    kwargs = {"num_train": 160, "num_val": 40, "num_test": 40, "batch_size": 16, **kwargs}
    return ShapesDataModule(**kwargs)


def test_metadata_and_batches():
    dm = small(channels=3, image_size=32)
    assert dm.input_shape == (3, 32, 32) and dm.num_classes == 8 and dm.class_names == list(SHAPE_NAMES)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 255 and x.max() > 100


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = small(seed=4), small(seed=4), small(seed=5)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.train_set.images, b.train_set.images) and torch.equal(a.test_set.labels, b.test_set.labels)
    assert not torch.equal(a.train_set.images, c.train_set.images)
    assert not torch.equal(a.val_set.images, a.test_set.images[: len(a.val_set)])  # independent splits


def test_classes_are_balanced_and_subsettable():
    images, labels = generate(["horizontal", "vertical", "circle"], 99, 20, 1, 0.0, seed=0)
    assert torch.bincount(labels).tolist() == [33, 33, 33] and images.shape == (99, 1, 20, 20)
    dm = small(classes=["vertical", "horizontal"])
    assert dm.class_names == ["vertical", "horizontal"] and dm.num_classes == 2


STROKES = [  # shape, pixels (row, col) that must be lit, pixels that must be dark; centre (14, 14), half-size 8
    ("horizontal", [(14, 7), (14, 20)], [(7, 14), (20, 14)]),
    ("vertical", [(7, 14), (20, 14)], [(14, 7), (14, 20)]),
    ("diagonal_up", [(18, 9), (9, 18)], [(9, 9), (18, 18)]),
    ("diagonal_down", [(9, 9), (18, 18)], [(18, 9), (9, 18)]),
    ("cross", [(14, 8), (8, 14)], [(9, 9), (18, 18)]),
    ("circle", [(14, 7), (7, 14)], [(14, 14)]),
    ("square", [(7, 10), (14, 7)], [(14, 14)]),
]


@pytest.mark.parametrize("shape, lit, dark", STROKES, ids=[s[0] for s in STROKES])
def test_each_shape_is_drawn_where_it_should_be(shape, lit, dark):
    image = draw(shape, torch.tensor([[14.0, 14.0]]), torch.tensor([8.0]), torch.tensor([1.5]), 28)[0]
    for r, c in lit:
        assert image[r, c] > 0.5, (shape, r, c)
    for r, c in dark:
        assert image[r, c] == 0, (shape, r, c)


@pytest.mark.parametrize("kwargs, key", [({"image_size": 5}, "data.image_size"), ({"channels": 2}, "data.channels"),
                                         ({"classes": ["hexagon", "circle"]}, "data.classes"),
                                         ({"classes": ["circle"]}, "data.classes"), ({"noise": 2}, "data.noise"),
                                         ({"num_val": 0}, "data.num_val")])
def test_bad_arguments(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        ShapesDataModule(**kwargs)


@pytest.mark.slow
def test_a_small_cnn_learns_the_lines_quickly():
    torch.manual_seed(0)
    dm = ShapesDataModule(num_train=800, num_val=200, num_test=200, batch_size=32, seed=1,
                          classes=["horizontal", "vertical", "diagonal_up", "diagonal_down"])
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 4))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    loader = dm.train_dataloader()
    for epoch in range(4):
        loader.sampler.set_epoch(epoch)
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(net(x / 255), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        correct = sum((net(x / 255).argmax(1) == y).sum().item() for x, y in dm.test_dataloader())
    assert correct / 200 >= 0.9
