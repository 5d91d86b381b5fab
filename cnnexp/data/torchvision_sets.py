"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's own classes, with clear errors and an in-memory copy."""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cnnexp.data.augment import resolve_augment
from cnnexp.atomic_write import atomic_write
from cnnexp.data.base import BaseDataModule, check_choice, check_fraction
from cnnexp.data.safe_pickle import load_data_pickle
from cnnexp.data.splits import holdout
from cnnexp.data.tensor_dataset import ImageTensorDataset
from cnnexp.errors import DataError

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


@dataclass(frozen=True)
class SetSpec:
    """What one torchvision set looks like on disk and to the model."""

    torchvision_class: str  # name in torchvision.datasets
    folder: str  # relative to data_dir
    files: tuple[str, ...]
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    source: str  # where to fetch the files by hand


SETS = {
    "mnist": SetSpec("MNIST", "MNIST/raw", MNIST_FILES, (1, 28, 28), tuple(str(d) for d in range(10)),
                     "https://ossci-datasets.s3.amazonaws.com/mnist/ (the .gz files; gzip or raw are both read)"),
    "fashion_mnist": SetSpec("FashionMNIST", "FashionMNIST/raw", MNIST_FILES, (1, 28, 28),
                             ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                              "Bag", "Ankle boot"),
                             "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ (the .gz files)"),
    "cifar10": SetSpec("CIFAR10", "cifar-10-batches-py", CIFAR_FILES, (3, 32, 32),
                       ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
                       "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract it into data_dir)"),
}


def _gunzip_missing(folder: str, files: tuple[str, ...]) -> None:
    """torchvision reads only uncompressed IDX files: expand `<file>.gz` copied by hand next to them."""
    for name in files:
        raw, packed = os.path.join(folder, name), os.path.join(folder, name + ".gz")
        if not os.path.exists(raw) and os.path.exists(packed):
            try:
                with gzip.open(packed, "rb") as src, atomic_write(raw) as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as error:
                raise DataError(f"{packed} is corrupt ({error}); delete it and fetch it again.") from None


def _torchvision_class(spec: SetSpec, verify_checksums: bool):
    import torchvision.datasets as tvd

    base = getattr(tvd, spec.torchvision_class)
    if spec.torchvision_class != "CIFAR10" or verify_checksums:
        return base

    class CIFAR10Unverified(base):  # type: ignore[misc, valid-type]
        """torchvision's CIFAR10 with the md5 check reduced to "the file exists" (files were pre-checked)."""

        def _check_integrity(self) -> bool:
            return all(os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f, _ in
                       self.train_list + self.test_list)

        def _load_meta(self) -> None:
            meta = load_data_pickle(os.path.join(self.root, self.base_folder, self.meta["filename"]))
            self.classes = meta[self.meta["key"]]  # type: ignore[index]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return CIFAR10Unverified


class TorchvisionDataModule(BaseDataModule):
    """A torchvision set (mnist, fashion_mnist, cifar10) held in memory as uint8, with a seeded val split.

    The files are read by torchvision's own dataset classes from the standard layout (`<data_dir>/MNIST/raw/
    train-images-idx3-ubyte`, `<data_dir>/cifar-10-batches-py/data_batch_1`, ...). Missing files (with
    `download=False`, or when the download fails, e.g. offline) and corrupt files raise DataError naming the
    path, the layout and how to fetch them. CIFAR pickles are first checked to hold only arrays and lists,
    so a crafted file cannot run code; `verify_checksums=True` also checks torchvision's md5 sums.

    Args:
        name: "mnist", "fashion_mnist" or "cifar10".
        data_dir: the root that holds the set's folder.
        download: let torchvision download missing files (needs the internet).
        val_fraction: share of the official training set held out (stratified, from `seed`) for validation;
            the official test set is the test set.
        augment: transform of training images `(C, H, W)` uint8: a preset ("flowers", "light"), a
            callable (e.g. `cnnexp.data.augment.keras_augment(...)`), or None.
        verify_checksums: check CIFAR-10's md5 sums (off: any well-formed files in the layout load).
        batch_size, num_workers, pin_memory, persistent_workers, seed: see `BaseDataModule`.

    Shape:
        - batch: `x (N, C, H, W)` float32 in 0..255 (1x28x28 or 3x32x32), `y (N,)` int64.
    """

    def __init__(self, name: str, data_dir: str, download: bool = False, batch_size: int = 32,
                 num_workers: int = 0, pin_memory: bool = False, persistent_workers: bool = False, seed: int = 42,
                 val_fraction: float = 0.1, augment: Callable | str | None = None,
                 verify_checksums: bool = False) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed)
        self.name = check_choice("name", name, tuple(SETS))
        self.spec = SETS[self.name]
        self.data_dir = os.path.abspath(os.fspath(data_dir))
        self.download = bool(download)
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        self.augment = resolve_augment(augment)
        self.verify_checksums = bool(verify_checksums)
        self.input_shape = self.spec.input_shape
        self.class_names = list(self.spec.class_names)
        self.num_classes = len(self.class_names)

    @property
    def folder(self) -> str:
        """`<data_dir>/<the set's folder>`, where the files must be."""
        return os.path.join(self.data_dir, self.spec.folder)

    def _missing(self) -> list[str]:
        return [f for f in self.spec.files if not os.path.isfile(os.path.join(self.folder, f))]

    def _fetch_hint(self) -> str:
        return (f"Expected layout: {self.folder}/{{{', '.join(self.spec.files)}}}. Fix: fetch it with "
                f"`data.download=true` (needs the internet), or copy the files there from {self.spec.source}; "
                f"set `data.data_dir=...` if they are elsewhere.")

    def prepare_data(self) -> None:
        """Find (or download) the files; raise DataError naming what is missing."""
        if self.spec.torchvision_class != "CIFAR10":
            _gunzip_missing(self.folder, self.spec.files)
        missing = self._missing()
        if missing and self.download:
            try:
                cls = _torchvision_class(self.spec, self.verify_checksums)
                cls(self.data_dir, train=True, download=True)
            except Exception as error:  # urllib / http / md5 errors: never a traceback
                raise DataError(f"could not download {self.name} into {self.folder} ({type(error).__name__}: "
                                f"{error}). {self._fetch_hint()}") from None
            missing = self._missing()
        if missing:
            raise DataError(f"{self.name} is missing from {self.folder}: no {', '.join(missing)}. "
                            f"{self._fetch_hint()}")
        if self.spec.torchvision_class == "CIFAR10":
            for f in self.spec.files:  # only arrays and lists: a crafted pickle cannot run code below
                load_data_pickle(os.path.join(self.folder, f), self._fetch_hint())

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Images `(N, C, H, W)` uint8 and labels `(N,)` int64 of the official train or test set."""
        cls = _torchvision_class(self.spec, self.verify_checksums)
        try:
            data = cls(self.data_dir, train=train, download=False)
        except Exception as error:  # asserts / pickle / md5 / shape errors inside torchvision
            raise DataError(f"{self.name} files in {self.folder} are corrupt or incomplete ({type(error).__name__}:"
                            f" {error}). Delete them and fetch them again. {self._fetch_hint()}") from None
        images = torch.as_tensor(np.asarray(data.data))  # (N, H, W) MNIST or (N, H, W, 3) CIFAR
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # (N, C, H, W)
        labels = torch.as_tensor(np.asarray(data.targets), dtype=torch.int64)  # (N,)
        if tuple(images.shape[1:]) != self.input_shape or images.dtype != torch.uint8 or len(labels) != len(images):
            raise DataError(f"{self.name} files in {self.folder} hold images {tuple(images.shape)} {images.dtype} and "
                            f"{len(labels)} labels; expected (N, *{self.input_shape}) uint8. {self._fetch_hint()}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(f"{self.name} labels in {self.folder} fall outside 0..{self.num_classes - 1}.")
        return images.contiguous(), labels

    def build_datasets(self) -> tuple[ImageTensorDataset, ImageTensorDataset, ImageTensorDataset]:
        self.prepare_data()  # idempotent: also run here so that setup() alone gives clear errors
        images, labels = self._load(train=True)
        try:
            train, val = holdout(labels.numpy(), self.val_fraction, self.seed)
        except ValueError as error:  # too few samples per class to stratify
            raise DataError(f"{self.name} in {self.folder} is too small for val_fraction={self.val_fraction}: "
                            f"{error}") from None
        test_images, test_labels = self._load(train=False)
        return (ImageTensorDataset(images[train], labels[train], self.augment),
                ImageTensorDataset(images[val], labels[val]),
                ImageTensorDataset(test_images, test_labels))
