"""One home per rule: the early config check and the constructors accept exactly the same values.

Each row names a config key and the constructor that receives it; every value of `VALUES` goes to both. A value the
early check lets through but a constructor refuses would fail minutes into a run (`data.val_fraction=0` did); one
the early check refuses but the constructor takes would block a valid run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from omegaconf import OmegaConf

from cnnexp.config_checks import config_problems
from cnnexp.data.digits import DigitsDataModule
from cnnexp.errors import ConfigError
from cnnexp.layers import Conv2D, Dense, Dropout, MaxPool2D

VALUES = [-1, 0, 1, 2, 3, 0.0, 0.15, 0.5, 0.99, 1.0, 1.5, -0.1, math.nan, math.inf, True, False, "abc", "same",
          "VALID", [1, 2], [0, 1], [2, 2, 2], 2**32]

# (config key, how the constructor receives the value)
ROWS: list[tuple[str, Callable[[Any], Any]]] = [
    ("data.batch_size", lambda v: DigitsDataModule(batch_size=v)),
    ("data.num_workers", lambda v: DigitsDataModule(num_workers=v)),
    ("data.val_fraction", lambda v: DigitsDataModule(val_fraction=v, test_fraction=0.001)),
    ("data.test_fraction", lambda v: DigitsDataModule(test_fraction=v, val_fraction=0.001)),
    ("data.seed", lambda v: DigitsDataModule(seed=v)),
    ("model.net.layers.0.filters", lambda v: Conv2D(filters=v, kernel_size=3)),
    ("model.net.layers.0.kernel_size", lambda v: Conv2D(filters=1, kernel_size=v)),
    ("model.net.layers.0.strides", lambda v: Conv2D(filters=1, kernel_size=1, strides=v)),
    ("model.net.layers.0.dilation_rate", lambda v: Conv2D(filters=1, kernel_size=1, dilation_rate=v)),
    ("model.net.layers.0.padding", lambda v: Conv2D(filters=1, kernel_size=1, padding=v)),
    ("model.net.layers.0.units", lambda v: Dense(units=v)),
    ("model.net.layers.0.pool_size", lambda v: MaxPool2D(pool_size=v)),
    ("model.net.layers.0.rate", lambda v: Dropout(rate=v)),
]


def early_check_accepts(key: str, value: Any) -> bool:
    if ".layers.0." in key:
        arg = key.split(".layers.0.")[1]
        cfg = OmegaConf.create({"model": {"net": {"layers": [{"_target_": "x", arg: value}]}}})
    else:
        cfg = OmegaConf.create({})
        OmegaConf.update(cfg, key, value, force_add=True)
    return not config_problems(cfg)


def constructor_accepts(build: Callable[[Any], Any], value: Any) -> bool:
    try:
        build(value)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(("key", "build"), ROWS, ids=[r[0] for r in ROWS])
def test_early_check_and_constructor_agree(key, build):
    disagree = [(v, early_check_accepts(key, v), constructor_accepts(build, v)) for v in VALUES]
    disagree = [d for d in disagree if d[1] != d[2]]
    assert not disagree, f"{key}: (value, early check accepts, constructor accepts): {disagree}"


def test_the_table_can_fail():
    """Control: a constructor with a different rule is caught."""
    def stricter(v):
        if not (isinstance(v, int) and v >= 2):
            raise ConfigError("x")

    assert early_check_accepts("data.batch_size", 1) and not constructor_accepts(stricter, 1)
