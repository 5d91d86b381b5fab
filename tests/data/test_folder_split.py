"""The Keras `image_dataset_from_directory` file order and training/validation split."""

import os

import numpy as np
import pytest

from cnnexp.data.folder_index import index_directory, keras_shuffle, split_files
from cnnexp.errors import DataError


def awkward_tree(root):
    """Names whose sorted order differs from numeric order, upper-case extensions, a nested folder."""
    names = {"tulips": ["img10.jpg", "img2.jpg", "IMG_1.JPG", "a.png", "b.jpeg"],
             "daisy": ["z.jpg", "10.jpg", "9.jpg", "sub/x.jpg", "sub/deeper/y.png", "_a.gif"],
             "roses": [f"r{i}.jpg" for i in range(7)]}
    for cls, files in names.items():
        for f in files:
            path = root / cls / f
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not decoded by indexing")
    return root


def test_index_sorts_classes_and_files_like_keras(tmp_path):
    index = index_directory(str(awkward_tree(tmp_path / "d")))
    assert index.class_names == ["daisy", "roses", "tulips"]
    rel = [os.path.relpath(p, tmp_path / "d") for p in index.paths]
    assert rel[:6] == ["daisy/10.jpg", "daisy/9.jpg", "daisy/_a.gif", "daisy/z.jpg", "daisy/sub/x.jpg",
                       "daisy/sub/deeper/y.png"]
    assert rel[-5:] == ["tulips/IMG_1.JPG", "tulips/a.png", "tulips/b.jpeg", "tulips/img10.jpg", "tulips/img2.jpg"]
    assert index.labels == [0] * 6 + [1] * 7 + [2] * 5


def test_shuffle_is_numpy_randomstate_on_the_path_list():
    paths = [f"p{i}" for i in range(37)]
    expected = list(paths)
    np.random.RandomState(123).shuffle(expected)  # what Keras does to its list of paths
    shuffled, labels = keras_shuffle(paths, list(range(37)), 123)
    assert shuffled == expected
    assert [paths[i] for i in labels] == shuffled  # labels follow their files


SPLITS = [(10, 0.2, 2), (37, 0.2, 7), (100, 0.25, 25), (3670, 0.2, 734)]  # n, validation_split, n_val


@pytest.mark.parametrize("n, fraction, n_val", SPLITS)
def test_split_keeps_the_last_int_fraction_for_validation(n, fraction, n_val):
    paths = [f"f{i:05d}" for i in range(n)]
    split = split_files(paths, [i % 3 for i in range(n)], fraction, seed=123)
    assert len(split.val_paths) == n_val and len(split.train_paths) == n - n_val
    assert sorted(split.train_paths + split.val_paths) == paths
    shuffled, _ = keras_shuffle(paths, [0] * n, 123)
    assert split.val_paths == shuffled[n - n_val:]
    assert split.val_labels == [int(p[1:]) % 3 for p in split.val_paths]


def test_too_few_files_for_the_split_is_a_data_error():
    with pytest.raises(DataError, match="too few"):
        split_files(["a", "b", "c", "d"], [0, 0, 1, 1], 0.2, seed=1)


def test_membership_matches_keras_itself(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    dataset_utils = pytest.importorskip("keras.src.utils.dataset_utils")
    image_dataset_utils = pytest.importorskip("keras.src.utils.image_dataset_utils")
    root = str(awkward_tree(tmp_path / "d"))
    for seed in (123, 7):
        paths, labels, classes = dataset_utils.index_directory(
            root, "inferred", formats=image_dataset_utils.ALLOWLIST_FORMATS, shuffle=True, seed=seed,
            verbose=False)
        k_train, k_train_labels = dataset_utils.get_training_or_validation_split(paths, labels, 0.2, "training")
        k_val, k_val_labels = dataset_utils.get_training_or_validation_split(paths, labels, 0.2, "validation")
        index = index_directory(root)
        ours = split_files(index.paths, index.labels, 0.2, seed)
        assert index.class_names == classes
        assert ours.train_paths == list(k_train) and ours.val_paths == list(k_val)
        assert ours.train_labels == list(k_train_labels) and ours.val_labels == list(k_val_labels)
