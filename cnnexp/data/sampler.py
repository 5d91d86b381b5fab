"""A training sampler whose order is a pure function of (seed, epoch), so that a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """Shuffles `range(num_samples)` with `torch.Generator().manual_seed(seed + epoch)`.

    Lightning calls `set_epoch(epoch)` on a loader's sampler before each epoch (also through its
    DistributedSampler wrapper), so epoch `e` of a resumed run yields exactly the order of epoch `e` of an
    uninterrupted run. `loader_generator` is handed to the DataLoader as its `generator`: it is reseeded in
    `set_epoch` too, so the worker base seeds (and with them per-worker augmentation) also depend only on
    (seed, epoch) and the loader never draws from the global RNG.

    Args:
        num_samples: length of the data set.
        seed: base seed.
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.epoch = 0
        self.loader_generator = torch.Generator().manual_seed(self.seed)

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of `epoch` (called by Lightning at the start of each epoch)."""
        self.epoch = int(epoch)
        self.loader_generator.manual_seed(self.seed + self.epoch + 1_000_003)

    def permutation(self) -> list[int]:
        """The order of the current epoch: `torch.randperm(n, generator=manual_seed(seed + epoch))`."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation())

    def __len__(self) -> int:
        return self.num_samples

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["loader_generator"] = None  # rebuilt on unpickling (torch.Generator is not picklable everywhere)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.loader_generator = torch.Generator()
        self.set_epoch(self.epoch)
