"""A folder of class sub-folders (the flower_photos layout), split like Keras and decoded once into memory."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch

from cnnexp.data.augment import resolve_augment
from cnnexp.data.base import BaseDataModule, check_choice, check_fraction, check_size
from cnnexp.data.download import fetch_data_dir
from cnnexp.data.folder_index import FolderIndex, index_directory, split_files
from cnnexp.data.image_cache import cached_decode
from cnnexp.data.image_decode import COLOR_MODES
from cnnexp.data.messages import warn_files
from cnnexp.data.tensor_dataset import ImageTensorDataset
from cnnexp.errors import DataError

CACHE_MODES = ("memory", "disk")


class ImageFolderDataModule(BaseDataModule):
    """`keras.utils.image_dataset_from_directory` for training and validation, as a LightningDataModule.

    The split reproduces Keras's file membership for the same `validation_split` and `seed` (see
    `cnnexp.data.folder_index`). Every image is decoded and resized once, in `setup()`, into one uint8
    tensor in memory (`cache="disk"` also keeps it in `<data_dir>/.cnnexp_cache/`, reused while the files'
    list, sizes and mtimes are unchanged); epochs only index that tensor. Augmentation (torchvision.transforms.v2,
    e.g. `cnnexp.data.augment.keras_augment()`) runs on the uint8 training images only.
    Bad inputs (docs/data.md): a missing or empty folder raises DataError; non-image files and undecodable
    images (zero bytes, truncated, corrupt) are skipped with one warning each giving the count and names;
    grayscale / RGBA / palette / 16-bit images are converted to `color_mode`.

    Args:
        data_dir: folder with one sub-folder per class.
        image_size: `(height, width)` after a bilinear resize (aspect ratio not kept, as Keras).
        validation_split: fraction of the files for validation (Keras's last `int(v * n)` after the shuffle).
        seed: Keras's shuffle seed (the lecture uses 123); also the train order's seed.
        augment: transform of training images `(C, H, W)` uint8: a preset ("flowers", "light"), a
            callable (e.g. `cnnexp.data.augment.keras_augment(...)`), or None.
        cache: "memory" or "disk".
        cache_dir: where `cache="disk"` writes (default `<data_dir>/.cnnexp_cache`).
        color_mode: "rgb" (3 channels), "grayscale" (1) or "rgba" (4), as Keras.
        test_dir: optional separate folder with the same class folders for `test`; without it the test
            set IS the validation split (as in the lecture, which only has the two).
        decode_threads: threads that decode in `setup()` (default: up to 8).
        download: fetch `archive` first when `data_dir` does not exist (`cnnexp.data.download`).
        archive: `{url, sha256, folder}` of a .tar.gz whose top folder is `data_dir`'s name (flower_photos).
        batch_size, num_workers, pin_memory, persistent_workers: see `BaseDataModule`.

    Shape:
        - batch: `x (N, C, H, W)` float32 in 0..255, `y (N,)` int64.
    """

    def __init__(self, data_dir: str, image_size: int | Sequence[int] = (180, 180), batch_size: int = 32,
                 validation_split: float = 0.2, seed: int = 123, augment: Callable | str | None = None,
                 cache: str = "memory", cache_dir: str | None = None, color_mode: str = "rgb",
                 test_dir: str | None = None, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, decode_threads: int | None = None, download: bool = False,
                 archive: Mapping[str, str] | None = None) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed)
        self.data_dir = os.path.abspath(os.fspath(data_dir))
        self.image_size = check_size("image_size", image_size)
        self.validation_split = check_fraction("validation_split", validation_split)
        self.cache = check_choice("cache", cache, CACHE_MODES)
        self.color_mode = check_choice("color_mode", color_mode, tuple(COLOR_MODES))
        self.cache_dir = os.fspath(cache_dir) if cache_dir else os.path.join(self.data_dir, ".cnnexp_cache")
        self.test_dir = os.path.abspath(os.fspath(test_dir)) if test_dir else None
        self.augment = resolve_augment(augment)
        self.decode_threads = decode_threads
        if download:
            fetch_data_dir(self.data_dir, archive)  # before indexing: the folder must exist
        self.index = index_directory(self.data_dir)  # lists files only: DataError now if the folder is bad
        self.test_index = index_directory(self.test_dir, self.index.class_names) if self.test_dir else None
        # The Keras split needs only the file list: compute it now so that a too-small folder fails early.
        self.split = split_files(self.index.paths, self.index.labels, self.validation_split, self.seed)
        self.input_shape = (COLOR_MODES[self.color_mode], *self.image_size)
        self.class_names = self.index.class_names
        self.num_classes = len(self.class_names)

    def cache_file(self, name: str) -> str | None:
        """The disk cache of one folder's images (None with cache="memory")."""
        if self.cache != "disk":
            return None
        h, w = self.image_size
        return os.path.join(self.cache_dir, f"{name}-{h}x{w}-{self.color_mode}.pt")

    def _decode(self, index: FolderIndex, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All files of `index` as `images (N, C, H, W)` uint8, `labels (N,)`, `ok (N,)` (False: unreadable)."""
        decoded = cached_decode(index.paths, self.image_size, self.color_mode, self.cache_file(name),
                                self.decode_threads)
        root = self.test_dir if name == "test" else self.data_dir
        warn_files("unreadable image file", [os.path.relpath(p, root) for p in decoded.bad], root,
                   "were skipped (zero bytes, truncated or corrupt)")
        return decoded.images, torch.tensor(index.labels, dtype=torch.int64), decoded.ok

    def prepare_data(self) -> None:
        """With cache="disk", decode once on the main process so that every DDP rank only reads the file."""
        if self.cache == "disk":
            cached_decode(self.index.paths, self.image_size, self.color_mode, self.cache_file("all"),
                          self.decode_threads)

    def build_datasets(self) -> tuple[ImageTensorDataset, ImageTensorDataset, ImageTensorDataset]:
        images, labels, ok = self._decode(self.index, "all")  # (N, C, H, W), (N,), (N,) in sorted order
        position = {path: i for i, path in enumerate(self.index.paths)}
        # The split covers the full file list (unreadable files included): good files land where Keras puts them.
        split = self.split

        def subset(paths: list[str], transform: Callable | None = None) -> ImageTensorDataset:
            rows = torch.tensor([position[p] for p in paths], dtype=torch.int64)  # (n,)
            rows = rows[ok[rows]]
            return ImageTensorDataset(images[rows], labels[rows], transform)

        train, val = subset(split.train_paths, self.augment), subset(split.val_paths)
        if len(train) == 0 or len(val) == 0:
            raise DataError(f"no readable images left for {'training' if len(train) == 0 else 'validation'} in "
                            f"{self.data_dir!r} ({len(self.index.paths)} files, {int((~ok).sum())} unreadable).")
        if self.test_index is None:
            return train, val, val
        test_images, test_labels, test_ok = self._decode(self.test_index, "test")
        return train, val, ImageTensorDataset(test_images[test_ok], test_labels[test_ok])
