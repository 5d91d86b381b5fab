"""TorchvisionDataModule on tiny files in the real formats (IDX, gzip IDX, CIFAR-10 pickles), read by torchvision."""

import os
import pickle

import pytest
import torch

from cnnexp.data.torchvision_sets import TorchvisionDataModule
from cnnexp.errors import ConfigError, DataError


SETS = [  # name, writer, input shape, n_train(official), n_test
    ("mnist", lambda r, f: f.write_mnist(r), (1, 28, 28), 60, 20),
    ("mnist", lambda r, f: f.write_mnist(r, gz=True), (1, 28, 28), 60, 20),
    ("fashion_mnist", lambda r, f: f.write_mnist(r, "FashionMNIST"), (1, 28, 28), 60, 20),
    ("cifar10", lambda r, f: f.write_cifar(r), (3, 32, 32), 40, 8),
]


@pytest.mark.parametrize("name, write, shape, n_train, n_test", SETS, ids=["mnist", "mnist-gz", "fashion", "cifar"])
def test_loads_real_format_files_through_torchvision(tmp_path, formats, name, write, shape, n_train, n_test):
    write(tmp_path, formats)
    dm = TorchvisionDataModule(name, str(tmp_path), batch_size=5, val_fraction=0.25, seed=1)
    assert dm.input_shape == shape and dm.num_classes == 10 and len(dm.class_names) == 10
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == n_train and len(dm.val_set) == n_train // 4
    assert len(dm.test_set) == n_test
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (5, *shape) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 255 and x.max() > 1  # 0..255, not 0..1


def test_pixels_and_labels_are_the_files_contents(tmp_path, formats):
    raw = formats.write_mnist(tmp_path, n_test=10)
    dm = TorchvisionDataModule("mnist", str(tmp_path))
    dm.setup()
    blob = (raw / "t10k-images-idx3-ubyte").read_bytes()[16:]
    expected = torch.frombuffer(bytearray(blob), dtype=torch.uint8).reshape(10, 1, 28, 28)
    assert torch.equal(dm.test_set.images, expected) and dm.test_set.labels.tolist() == list(range(10))


def test_cifar_images_are_channels_first(tmp_path, formats):
    folder = formats.write_cifar(tmp_path)
    dm = TorchvisionDataModule("cifar10", str(tmp_path))
    dm.setup()
    with open(folder / "test_batch", "rb") as f:
        entry = pickle.load(f)
    assert torch.equal(dm.test_set.images[0], torch.from_numpy(entry["data"][0].reshape(3, 32, 32)))


MISSING = [("mnist", "MNIST/raw", "train-images-idx3-ubyte"), ("fashion_mnist", "FashionMNIST/raw", "t10k"),
           ("cifar10", "cifar-10-batches-py", "data_batch_1")]


@pytest.mark.parametrize("name, folder, file", MISSING)
def test_missing_files_name_the_path_layout_and_the_fix(tmp_path, name, folder, file):
    dm = TorchvisionDataModule(name, str(tmp_path / "data"))  # construction needs no files
    with pytest.raises(DataError) as error:
        dm.setup()
    message = str(error.value)
    for words in (os.path.join(str(tmp_path / "data"), folder), file, "data.download=true", "Expected layout"):
        assert words in message


def test_failed_download_is_a_data_error_not_a_urllib_traceback(tmp_path, monkeypatch):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    dm = TorchvisionDataModule("mnist", str(tmp_path), download=True)
    with pytest.raises(DataError, match="could not download mnist") as error:
        dm.prepare_data()
    assert "copy the files there" in str(error.value)


def corrupt_idx(tmp_path, formats):
    raw = formats.write_mnist(tmp_path)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")


def truncated_idx(tmp_path, formats):
    raw = formats.write_mnist(tmp_path)
    blob = (raw / "train-images-idx3-ubyte").read_bytes()
    (raw / "train-images-idx3-ubyte").write_bytes(blob[: len(blob) // 2])


def corrupt_gz(tmp_path, formats):
    raw = formats.write_mnist(tmp_path, gz=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")


def corrupt_cifar(tmp_path, formats):
    folder = formats.write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"\x80\x02}q\x00(X\x04")


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def malicious_cifar(tmp_path, formats):
    folder = formats.write_cifar(tmp_path)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": RunsCode()}))


CORRUPT = [("mnist", corrupt_idx, "corrupt"), ("mnist", truncated_idx, "corrupt"), ("mnist", corrupt_gz, "corrupt"),
           ("cifar10", corrupt_cifar, "data_batch_3"), ("cifar10", malicious_cifar, "not allowed")]


@pytest.mark.parametrize("name, damage, words", CORRUPT, ids=[c[1].__name__ for c in CORRUPT])
def test_corrupt_files_are_a_data_error(tmp_path, formats, name, damage, words):
    damage(tmp_path, formats)
    dm = TorchvisionDataModule(name, str(tmp_path))
    with pytest.raises(DataError, match=words):
        dm.setup()


def test_bad_name_lists_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="mnist, fashion_mnist, cifar10"):
        TorchvisionDataModule("imagenet", str(tmp_path))


def test_verify_checksums_rejects_files_that_are_not_the_official_ones(tmp_path, formats):
    formats.write_cifar(tmp_path)
    dm = TorchvisionDataModule("cifar10", str(tmp_path), verify_checksums=True)
    with pytest.raises(DataError, match="corrupt or incomplete"):
        dm.setup()
