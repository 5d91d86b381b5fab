"""The validity rules of config values, each defined once (pure predicates: value -> bool, no imports).

Three places check values and all of them read these predicates, so they cannot disagree:

- `cnnexp.config_checks` (the early pass over the composed config, before anything is built or imported);
- `cnnexp.layers.checks` (the layers' constructors: `Conv2D(filters=0)` raises);
- `cnnexp.data.base` (the data modules' constructors: `DigitsDataModule(val_fraction=0)` raises).

`tests/reliability/test_rules_agree.py` feeds the same values to the early check and to the constructors.
Why a table of predicates and not structured-config dataclasses: docs/architecture.md ("One home per rule").
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

PADDING_MODES = ("valid", "same")


def is_int(v: Any) -> bool:
    """An integer that is not a bool (numpy and torch integers count)."""
    return isinstance(v, Integral) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite real number that is not a bool."""
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def positive_int(v: Any) -> bool:
    return is_int(v) and v >= 1


def nonneg_int(v: Any) -> bool:
    return is_int(v) and v >= 0


def positive_number(v: Any) -> bool:
    return is_number(v) and v > 0


def nonneg_number(v: Any) -> bool:
    return is_number(v) and v >= 0


def fraction(v: Any) -> bool:
    """A number in [0, 1): a drop rate (0 = no dropout)."""
    return is_number(v) and 0 <= v < 1


def open_fraction(v: Any) -> bool:
    """A number in (0, 1): a share of the data held out (0 would leave no validation or test set)."""
    return is_number(v) and 0 < v < 1


def int_pair(v: Any, element: Any) -> bool:
    """An int, or a list/tuple of two ints, each passing `element` (sizes, strides: Keras accepts both)."""
    if isinstance(v, (list, tuple)):
        return len(v) == 2 and all(element(x) for x in v)
    return element(v)


def positive_pair(v: Any) -> bool:
    """A positive int or a pair of them (kernel sizes, strides, pool sizes, dilation)."""
    return int_pair(v, positive_int)


def padding(v: Any) -> bool:
    """"valid" / "same" (any case, as Keras), an int >= 0 or a pair of them."""
    if isinstance(v, str):
        return v.lower() in PADDING_MODES
    return int_pair(v, nonneg_int)


def seed(v: Any) -> bool:
    """A seed numpy and Lightning accept: an int in [0, 2**32 - 1]."""
    return is_int(v) and 0 <= v <= 2**32 - 1
