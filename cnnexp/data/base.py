"""The plumbing every data module shares: argument checks, the three DataLoaders, the seeded train order."""

from __future__ import annotations

import os
from collections.abc import Sequence

import lightning as L
from torch.utils.data import DataLoader, Dataset

from cnnexp.data.sampler import EpochShuffleSampler
from cnnexp.data.tensor_dataset import collate_images
from cnnexp import rules
from cnnexp.errors import ConfigError


def check_int(key: str, value: object, minimum: int = 1) -> int:
    """Return `value` as an int, or raise ConfigError naming `data.<key>` when it is not an int >= minimum
    (`cnnexp.rules.positive_int` / `nonneg_int`, as the early config check)."""
    if not rules.is_int(value) or value < minimum:  # type: ignore[operator]
        raise ConfigError(f"data.{key}={value!r} is invalid: expected an integer >= {minimum}. "
                          f"Fix: e.g. data.{key}={max(minimum, 1) * 32 if key == 'batch_size' else minimum}")
    return value


def check_fraction(key: str, value: object, low: float = 0.0, high: float = 1.0) -> float:
    """Return `value` as a float in the open interval (low, high), or raise ConfigError naming `data.<key>`
    (`cnnexp.rules.open_fraction` for the default bounds, as the early config check)."""
    if not rules.is_number(value) or not low < value < high:  # type: ignore[operator]
        raise ConfigError(f"data.{key}={value!r} is invalid: expected a number strictly between {low} and {high}. "
                          f"Fix: e.g. data.{key}=0.15")
    return float(value)


def check_choice(key: str, value: object, choices: Sequence[str]) -> str:
    """Return `value` when it is one of `choices`, else raise ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"data.{key}={value!r} is invalid: expected one of {', '.join(map(str, choices))}. "
                          f"Fix: e.g. data.{key}={choices[0]}")
    return str(value)


def check_size(key: str, value: object) -> tuple[int, int]:
    """Return an image size `(H, W)` from an int or a pair of positive ints, else raise ConfigError."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ConfigError(f"data.{key}={value!r} is invalid: expected [height, width], e.g. [180, 180].") from None
    return check_int(key, h), check_int(key, w)


class BaseDataModule(L.LightningDataModule):
    """A LightningDataModule whose subclasses only say how to build the train/val/test data sets.

    Subclasses set `input_shape` `(C, H, W)`, `num_classes` and `class_names` in `__init__` (without
    reading the data) and implement `build_datasets()`. Batches are `(x (N, C, H, W) float32 in 0..255,
    y (N,) int64)`. The train loader shuffles with `EpochShuffleSampler(seed)` (order = f(seed, epoch));
    validation and test loaders keep a fixed order.

    Args:
        batch_size: samples per batch (> 0).
        num_workers: DataLoader worker processes (0 = load in the main process).
        pin_memory: page-lock batches for faster host-to-GPU copies.
        persistent_workers: keep workers alive between epochs (only used when num_workers > 0).
        seed: seeds the split (where the subclass makes one) and the train order; None: the run's seed
            (`PL_GLOBAL_SEED`, set by `lightning.seed_everything`).
    """

    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: list[str]

    def __init__(self, batch_size: int = 32, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int | None = 42) -> None:
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size)
        self.num_workers = check_int("num_workers", num_workers, minimum=0)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        if seed is None:  # `seed: null`: the seed train() drew with lightning.seed_everything
            seed = int(os.environ.get("PL_GLOBAL_SEED", "0"))
        if not rules.seed(seed):
            raise ConfigError(f"data.seed={seed!r} is invalid: expected an integer in [0, 2**32 - 1]. "
                              f"Fix: e.g. seed=42.")
        self.seed = int(seed)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        """Return the (train, val, test) data sets; called once, by the first `setup()`."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Build the data sets once (every stage shares them)."""
        if self.train_set is None:
            self.train_set, self.val_set, self.test_set = self.build_datasets()

    def _loader(self, dataset: Dataset | None, train: bool) -> DataLoader:
        assert dataset is not None, "setup() builds the data sets first"
        workers = self.num_workers
        kwargs = dict(batch_size=self.batch_size, num_workers=workers, pin_memory=self.pin_memory,
                      collate_fn=collate_images,
                      persistent_workers=self.persistent_workers and workers > 0)
        if train:
            sampler = EpochShuffleSampler(len(dataset), self.seed)  # type: ignore[arg-type]
            return DataLoader(dataset, sampler=sampler, generator=sampler.loader_generator, **kwargs)
        return DataLoader(dataset, shuffle=False, **kwargs)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.test_set, train=False)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_shape={self.input_shape}, num_classes={self.num_classes}, "
                f"batch_size={self.batch_size})")
