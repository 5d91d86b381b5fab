"""Helpers that write small image trees in real formats (JPEG / PNG) into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_image(path: Path, size=(24, 32), mode: str = "RGB", value: int | None = None, seed: int = 0) -> Path:
    """Write a real image file (format from the suffix) of `size` (H, W) in a Pillow `mode`."""
    from PIL import Image

    h, w = size
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        array = rng.integers(0, 65536, (h, w), dtype=np.uint16) if value is None else np.full((h, w), value, np.uint16)
        Image.fromarray(array).save(path)
        return path
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = rng.integers(0, 256, (h, w, channels), dtype=np.uint8) if value is None else \
        np.full((h, w, channels), value, np.uint8)
    Image.fromarray(array.squeeze(-1) if channels == 1 else array).save(path)
    return path


def make_tree(root: Path, counts: dict[str, int], size=(24, 32), suffix: str = ".jpg") -> Path:
    """`root/<class>/img<i><suffix>` with `counts[class]` images each; pixel values encode the class."""
    for k, (name, n) in enumerate(counts.items()):
        for i in range(n):
            write_image(root / name / f"img{i}{suffix}", size, seed=100 * k + i)
    return root


@pytest.fixture
def image_tree(tmp_path: Path):
    """A factory: image_tree({"a": 5, "b": 3}, size=(H, W), suffix=".png") -> folder path."""
    def factory(counts: dict[str, int], size=(24, 32), suffix: str = ".jpg", name: str = "photos") -> Path:
        return make_tree(tmp_path / name, counts, size, suffix)
    return factory


@pytest.fixture(name="write_image")
def write_image_fixture():
    """The `write_image(path, size, mode, value, seed)` helper."""
    return write_image


@pytest.fixture(name="make_tree")
def make_tree_fixture():
    """The `make_tree(root, counts, size, suffix)` helper."""
    return make_tree
