"""Bad image folders (issue 5, item 2): each case converts, skips with one warning, or fails with the path.

The table of cases and what the user sees is in docs/data.md; keep the two in step.
"""

import warnings

import pytest
import torch

from cnnexp.data.image_decode import read_image
from cnnexp.data.image_folder import ImageFolderDataModule
from cnnexp.data.messages import DataWarning
from cnnexp.errors import DataError



def module(root, **kwargs):
    return ImageFolderDataModule(str(root), image_size=(12, 12), batch_size=4, **kwargs)


def data_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


def loose_images(root, make_tree, write_image):
    root.mkdir()
    for i in range(3):
        write_image(root / f"img{i}.jpg")


def only_text(root, make_tree, write_image):
    (root / "a").mkdir(parents=True)
    (root / "a" / "notes.txt").write_text("x")


FATAL = [  # (what the folder looks like, builder(root, make_tree, write_image), words the message must contain)
    ("missing", None, ["does not exist", "Expected layout", "data.data_dir", "flower_photos.tgz"]),
    ("empty", lambda root, *_: root.mkdir(), ["no class sub-folders", "Expected layout"]),
    ("loose images, no class folders", loose_images, ["3 images directly", "sub-folder"]),
    ("class folders without any image", only_text, ["contains no images"]),
    ("too few images to split", lambda root, make_tree, _: make_tree(root, {"a": 1, "b": 1}),
     ["too few", "validation_split"]),
]


@pytest.mark.parametrize("case, build, words", FATAL, ids=[c[0] for c in FATAL])
def test_fatal_cases_raise_data_error_with_the_path(tmp_path, make_tree, write_image, case, build, words):
    root = tmp_path / "flowers"
    if build:
        build(root, make_tree, write_image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError) as error:
            module(root)
    message = str(error.value)
    assert str(root) in message or case == "too few images to split"
    for word in words:
        assert word in message


def test_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match="is not a folder"):
        module(tmp_path / "x.zip")


def test_empty_class_folder_warns_once_and_keeps_the_class(tmp_path, make_tree, write_image):
    root = make_tree(tmp_path / "d", {"a": 5, "c": 5})
    (root / "b").mkdir()
    with pytest.warns(DataWarning) as record:
        dm = module(root)
    messages = data_warnings(record)
    assert len(messages) == 1 and messages[0].startswith("1 class folder in")
    assert "without images" in messages[0] and messages[0].endswith(": b/") and "kept" in messages[0]
    assert dm.class_names == ["a", "b", "c"] and dm.num_classes == 3  # same indices as Keras
    dm.setup()
    assert set(dm.train_set.labels.tolist() + dm.val_set.labels.tolist()) == {0, 2}


def test_non_image_files_are_skipped_with_one_warning_naming_them(tmp_path, make_tree, write_image):
    root = make_tree(tmp_path / "d", {"a": 5, "b": 5})
    for name in ("a/readme.txt", "b/labels.csv", "b/photo.webp"):
        (root / name).write_text("x")
    (root / "a" / ".DS_Store").write_bytes(b"\0")  # hidden files are ignored silently
    (root / "LICENSE.txt").write_text("top-level files are not in a class: ignored")
    with pytest.warns(DataWarning) as record:
        dm = module(root)
    messages = data_warnings(record)
    assert len(messages) == 1
    assert messages[0].startswith("3 non-image files")
    for name in ("a/readme.txt", "b/labels.csv", "b/photo.webp"):
        assert name in messages[0]
    assert ".DS_Store" not in messages[0] and "LICENSE" not in messages[0]
    assert len(dm.index.paths) == 10


def test_corrupt_truncated_and_empty_images_are_skipped_with_one_warning(tmp_path, make_tree, write_image):
    root = make_tree(tmp_path / "d", {"a": 8, "b": 8}, size=(40, 40))
    good = module(root)
    good.setup()
    jpeg = (root / "a" / "img1.jpg").read_bytes()
    (root / "a" / "img1.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # truncated JPEG
    (root / "b" / "img2.jpg").write_bytes(b"")  # zero bytes
    (root / "b" / "img3.jpg").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # corrupt (and not a JPEG)
    dm = module(root)
    with pytest.warns(DataWarning) as record:
        dm.setup()
    messages = data_warnings(record)
    assert len(messages) == 1 and messages[0].startswith("3 unreadable image files")
    for name in ("a/img1.jpg", "b/img2.jpg", "b/img3.jpg"):
        assert name in messages[0]
    assert len(dm.train_set) + len(dm.val_set) == 16 - 3
    # The other files keep their Keras split: the surviving validation images are the same as before.
    kept = {tuple(img.flatten()[:8].tolist()) for img in dm.val_set.images}
    before = {tuple(img.flatten()[:8].tolist()) for img in good.val_set.images}
    assert kept <= before and len(before - kept) <= 3


def test_every_image_unreadable_is_a_data_error(tmp_path):
    for name in ("a/1.jpg", "a/2.jpg", "b/1.jpg", "b/2.jpg", "b/3.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    dm = module(tmp_path)
    with pytest.warns(DataWarning), pytest.raises(DataError, match="no readable images"):
        dm.setup()


MODES = [  # (Pillow mode written, pixel value, value after conversion to 8-bit gray)
    ("L", 200, 200), ("RGB", 90, 90), ("RGBA", 30, 30), ("I;16", 0x8000, 128), ("I;16", 65535, 255)]


@pytest.mark.parametrize("mode, value, expected", MODES)
@pytest.mark.parametrize("color_mode, channels", [("rgb", 3), ("grayscale", 1), ("rgba", 4)])
def test_image_modes_are_converted_to_the_color_mode(tmp_path, write_image, mode, value, expected, color_mode, channels):
    path = write_image(tmp_path / "x.png", (6, 7), mode=mode, value=value)
    image = read_image(str(path), color_mode)
    assert image.shape == (channels, 6, 7) and image.dtype == torch.uint8
    assert image[:3].unique().tolist() == [expected]


def test_mixed_modes_in_one_folder_give_one_rgb_tensor(tmp_path, make_tree, write_image):
    root = make_tree(tmp_path / "d", {"a": 4, "b": 4}, suffix=".png")
    write_image(root / "a" / "gray.png", mode="L")
    write_image(root / "a" / "alpha.png", mode="RGBA")
    write_image(root / "b" / "deep.png", mode="I;16")
    from PIL import Image
    Image.new("P", (9, 9)).save(root / "b" / "palette.gif")
    dm = module(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # nothing is skipped
        dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == 12
    assert dm.train_set.images.shape[1:] == (3, 12, 12)
