"""Seeded, stratified hold-out splits of a labelled set (digits, the torchvision training sets)."""

from __future__ import annotations

import numpy as np


def holdout(labels: np.ndarray, fraction: float, seed: int, index: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Split `index` (default `arange(len(labels))`) into (kept, held out), stratified by label.

    Args:
        labels: `(N,)` labels of the whole set.
        fraction: share of `index` held out, 0 < fraction < 1.
        seed: scikit-learn random_state.
        index: the positions to split (a subset of `range(N)`).

    Returns:
        two sorted index arrays partitioning `index`; the held-out one has `ceil(fraction * len(index))`.
        Where some class is too rare to stratify (tiny test sets), the split is seeded but not stratified.

    Raises:
        ValueError: `index` is too small to hold out anything.
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels)) if index is None else np.asarray(index)
    try:
        kept, held = train_test_split(index, test_size=fraction, stratify=np.asarray(labels)[index],
                                      random_state=seed)
    except ValueError:  # a class with a single sample, or fewer held-out samples than classes
        kept, held = train_test_split(index, test_size=fraction, random_state=seed)
    return np.sort(kept), np.sort(held)


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices into (train, val, test), stratified by label, fixed by `seed`.

    Args:
        labels: `(N,)` class labels.
        val_fraction: share of all samples for validation.
        test_fraction: share of all samples for test.
        seed: random_state of both scikit-learn splits.

    Returns:
        three sorted index arrays that partition `range(N)`.
    """
    rest, test = holdout(labels, test_fraction, seed)
    train, val = holdout(labels, val_fraction / (1.0 - test_fraction), seed, index=rest)
    return train, val, test
