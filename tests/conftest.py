"""Shared fixtures: compose the package's Hydra config for a test, and tiny data sets in the real formats."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import pytest

# The convolution's implementation per layer is planned by timing on first use (cnnexp.functional.planner); the tests
# check every implementation explicitly and want the same path on every run, so they take the built-in choices
# (subprocesses too). tests/functional/test_planner.py measures on purpose.
os.environ.setdefault("CNNEXP_PLAN", "estimate")
from omegaconf import DictConfig, open_dict


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `slow` end-to-end tests first (in their file order): with the suite spread over several workers
    (pytest-xdist), a long test started last would leave the other workers idle while it finishes."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _data_writers():
    """The data tests' writers of real-format files (MNIST IDX, CIFAR-10 pickles, JPEG trees), reused as is."""
    spec = importlib.util.spec_from_file_location("cnnexp_test_data_writers",
                                                  Path(__file__).parent / "data" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """`<root>/MNIST`, `<root>/FashionMNIST`, `<root>/cifar-10-batches-py` and `<root>/flower_photos` (5 classes
    of small JPEGs): every on-disk data set the experiments read, tiny, written once per session."""
    writers = _data_writers()
    root = tmp_path_factory.mktemp("data")
    writers.write_mnist(root, "MNIST", n_train=80, n_test=20)
    writers.write_mnist(root, "FashionMNIST", n_train=80, n_test=20, seed=1)
    writers.write_cifar(root, n_per_batch=16)
    classes = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    writers.make_tree(root / "flower_photos", {name: 8 for name in classes}, size=(24, 32))
    return root


def compose_config(overrides: list[str], output_dir: Path, data_dir: Path | None = None) -> DictConfig:
    """Compose `cnnexp/conf/config.yaml` as `python -m cnnexp <overrides>` would, writing into `output_dir`."""
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    import cnnexp.conf  # noqa: F401  (resolvers)

    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.root_dir = str(output_dir.parent)
        cfg.paths.log_dir = str(output_dir.parent)
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture(scope="session")
def compose() -> Callable[..., DictConfig]:
    """`compose(overrides, output_dir, data_dir=None)`, for fixtures wider than one test."""
    return compose_config


@pytest.fixture
def make_cfg(tmp_path) -> Callable[..., DictConfig]:
    """make_cfg(*overrides, run="run", data_dir=None) -> a composed config whose run folder is tmp_path/run."""
    def factory(*overrides: str, run: str = "run", data_dir: Path | None = None) -> DictConfig:
        return compose_config(list(overrides), tmp_path / run, data_dir)
    return factory


# Small, fast settings for end-to-end runs: tiny net, no pictures, no progress bar.
FAST = ["model=tiny_cnn", "~callbacks.tensorboard_pictures", "~callbacks.rich_progress",
        "trainer.enable_progress_bar=false"]
