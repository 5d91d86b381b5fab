"""List a folder of class sub-folders and split it exactly as Keras's `image_dataset_from_directory` does.

Keras 3 (`keras/src/utils/dataset_utils.py: index_directory`): class names are the sorted non-hidden
sub-folders; each class folder is walked (`os.walk`, sorted by folder, files sorted) keeping files whose
lower-cased name ends with an image extension; the per-class lists are concatenated in class order; then
`np.random.RandomState(seed).shuffle` shuffles the paths (and a fresh `RandomState(seed)` the labels, i.e.
the same permutation); `get_training_or_validation_split` keeps the last `int(validation_split * n)` files
for validation and the rest for training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cnnexp.data.messages import warn_files
from cnnexp.errors import DataError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # keras ALLOWLIST_FORMATS
LAYOUT = "<data_dir>/<class_name>/<image>.jpg, one sub-folder per class (as flower_photos/daisy/*.jpg, roses/*.jpg)"


class FolderIndex(NamedTuple):
    """The images of a class-folder tree in Keras's sorted order (before shuffling)."""

    paths: list[str]  # os.path.join(data_dir, class_name, relative file path)
    labels: list[int]  # index into class_names
    class_names: list[str]


class Split(NamedTuple):
    """Training and validation files, in Keras's order."""

    train_paths: list[str]
    train_labels: list[int]
    val_paths: list[str]
    val_labels: list[int]


def _class_folders(data_dir: str) -> list[str]:
    return [d for d in sorted(os.listdir(data_dir))
            if os.path.isdir(os.path.join(data_dir, d)) and not d.startswith(".")]


def index_directory(data_dir: str, class_names: Sequence[str] | None = None,
                    formats: tuple[str, ...] = IMAGE_EXTENSIONS) -> FolderIndex:
    """List the images under `data_dir/<class>/` in Keras's order, with the checks of docs/data.md.

    Args:
        data_dir: folder with one sub-folder per class.
        class_names: expected classes in this order (e.g. the training classes when indexing a test folder);
            default: the sorted sub-folders.
        formats: image file extensions (lower case).

    Returns:
        FolderIndex(paths, labels, class_names).

    Raises:
        DataError: the folder is missing, has no class sub-folders, has no images, or lacks a class folder.

    Warns:
        DataWarning: non-image files (skipped) and class folders without images (kept, as in Keras).
    """
    data_dir = os.path.abspath(os.fspath(data_dir))
    if not os.path.isdir(data_dir):
        what = "is not a folder" if os.path.exists(data_dir) else "does not exist"
        raise DataError(f"image folder {data_dir!r} {what}. Expected layout: {LAYOUT}. Set `data.data_dir=...` "
                        "to the folder, or fetch flower_photos with data.download=true, or by hand: curl -L https://storage.googleapis.com/"
                        "download.tensorflow.org/example_images/flower_photos.tgz | tar xz -C <paths.data_dir>")
    found = _class_folders(data_dir)
    if class_names is None:
        class_names = found
    else:
        missing = [c for c in class_names if c not in found]
        if missing:
            raise DataError(f"image folder {data_dir!r} lacks the class folders {missing}; "
                            f"expected the classes {list(class_names)} (layout: {LAYOUT}).")
    if not class_names:
        loose = [f for f in sorted(os.listdir(data_dir)) if f.lower().endswith(formats)]
        hint = (f" It holds {len(loose)} images directly: move them into one sub-folder per class."
                if loose else "")
        raise DataError(f"image folder {data_dir!r} has no class sub-folders.{hint} Expected layout: {LAYOUT}.")

    paths: list[str] = []
    labels: list[int] = []
    skipped: list[str] = []
    empty: list[str] = []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(data_dir, name)
        count = 0
        for root, _, files in sorted(os.walk(class_dir), key=lambda entry: entry[0]):
            for fname in sorted(files):
                relative = os.path.join(name, os.path.relpath(os.path.join(root, fname), class_dir))
                if fname.lower().endswith(formats):
                    paths.append(os.path.join(data_dir, relative))
                    labels.append(label)
                    count += 1
                elif not fname.startswith("."):
                    skipped.append(relative)
        if count == 0:
            empty.append(name)
    warn_files("non-image file", skipped, data_dir,
               f"were skipped (only {', '.join(formats)} files are read)")
    if not paths:
        raise DataError(f"image folder {data_dir!r} contains no images ({', '.join(formats)}) in its class "
                        f"folders {list(class_names)}. Expected layout: {LAYOUT}.")
    if empty:
        warn_files("class folder", [f"{n}/" for n in empty], data_dir,
                   "without images (kept as classes, with the same indices as Keras, but never trained)")
    return FolderIndex(paths, labels, list(class_names))


def keras_shuffle(paths: Sequence[str], labels: Sequence[int], seed: int) -> tuple[list[str], list[int]]:
    """Shuffle paths and labels together as Keras does: `np.random.RandomState(seed).shuffle` on each.

    Shuffling an index array with a fresh `RandomState(seed)` draws the same Fisher-Yates swaps as shuffling
    the path list, so one permutation serves both.
    """
    order = np.arange(len(paths))
    np.random.RandomState(seed).shuffle(order)
    return [paths[i] for i in order], [int(labels[i]) for i in order]


def split_files(paths: Sequence[str], labels: Sequence[int], validation_split: float, seed: int) -> Split:
    """Keras's training/validation split of an indexed folder (pure: no file system access).

    Args:
        paths: files in Keras's sorted order (`index_directory(...).paths`).
        labels: their class indices.
        validation_split: fraction for validation, 0 < v < 1.
        seed: the `seed` given to Keras's `image_dataset_from_directory`.

    Returns:
        Split(train_paths, train_labels, val_paths, val_labels): after the seeded shuffle, the last
        `int(validation_split * n)` files validate, the others train.

    Raises:
        DataError: too few files for both subsets to be non-empty.
    """
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    shuffled, shuffled_labels = keras_shuffle(paths, labels, seed)
    n_val = int(validation_split * len(shuffled))
    if n_val == 0 or n_val == len(shuffled):
        raise DataError(f"{len(shuffled)} images are too few for validation_split={validation_split}: "
                        f"validation would get {n_val}. Add images or change `data.validation_split`.")
    cut = len(shuffled) - n_val
    return Split(shuffled[:cut], shuffled_labels[:cut], shuffled[cut:], shuffled_labels[cut:])
