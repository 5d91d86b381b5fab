"""Helpers that write small data sets in real formats (JPEG / PNG trees, MNIST IDX, CIFAR-10 pickles)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

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


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """IDX (big-endian) as in http://yann.lecun.com/exdb/mnist/: magic 0x0000 08 <ndim>, dims, uint8 data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)


def write_mnist(root, folder="MNIST", n_train=60, n_test=20, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz)
    return raw


def write_cifar(root, n_per_batch=8, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"batch_label": name, "labels": [int(v) for v in rng.integers(0, 10, n_per_batch)],
                 "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 "filenames": [f"{i}.png" for i in range(n_per_batch)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                            "truck"], "num_cases_per_batch": n_per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


@pytest.fixture
def formats():
    """The writers of real-format files: write_idx, write_mnist, write_cifar, make_tree, write_image."""
    return SimpleNamespace(write_idx=write_idx, write_mnist=write_mnist, write_cifar=write_cifar,
                           make_tree=make_tree, write_image=write_image)
