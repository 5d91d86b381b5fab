"""Validation of Keras-style constructor arguments; every failure is a ConfigError naming the argument.

Example:
    >>> positive_pair("Conv2D", "kernel_size", 3)
    (3, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

from cnnexp.errors import ConfigError

IntPair = int | tuple[int, int]
Padding = str | int | tuple[int, int]

PADDING_MODES = ("valid", "same")


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def positive_int(layer: str, arg: str, value: object) -> int:
    """Return `value` as an int >= 1, or raise ConfigError naming `layer` and `arg`."""
    if not _is_int(value) or int(value) < 1:
        raise ConfigError(f"{layer}: {arg} must be an integer >= 1, got {value!r}")
    return int(value)


def positive_pair(layer: str, arg: str, value: object) -> tuple[int, int]:
    """Return an int or an (h, w) pair as a pair of ints >= 1 (Keras accepts both forms)."""
    if _is_int(value):
        items = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        items = tuple(value)
    else:
        raise ConfigError(f"{layer}: {arg} must be an integer >= 1 or a pair [h, w] of them, got {value!r}")
    if not all(_is_int(v) and int(v) >= 1 for v in items):
        raise ConfigError(f"{layer}: {arg} must be an integer >= 1 or a pair [h, w] of them, got {value!r}")
    return int(items[0]), int(items[1])


def padding_arg(layer: str, value: object) -> Padding:
    """Return 'valid' | 'same' (case-insensitive, like Keras), an int >= 0 or an (h, w) pair of them."""
    if isinstance(value, str) and value.lower() in PADDING_MODES:
        return value.lower()
    if _is_int(value) and int(value) >= 0:
        return int(value)
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_int(v) and int(v) >= 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ConfigError(
        f"{layer}: padding must be one of {list(PADDING_MODES)}, an integer >= 0 or a pair [h, w], got {value!r}"
    )


def number(layer: str, arg: str, value: object) -> float:
    """Return a real number as float, or raise ConfigError."""
    if not isinstance(value, Real) or isinstance(value, bool):
        raise ConfigError(f"{layer}: {arg} must be a number, got {value!r}")
    return float(value)


def choice(layer: str, arg: str, value: object, allowed: Sequence[str]) -> str:
    """Return `value` if it is one of `allowed`, or raise ConfigError listing them."""
    if value not in allowed:
        raise ConfigError(f"{layer}: {arg} must be one of {list(allowed)}, got {value!r}")
    return str(value)
