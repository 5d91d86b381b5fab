"""Validation of Keras-style constructor arguments; every failure is a ConfigError naming the argument.

Example:
    >>> positive_pair("Conv2D", "kernel_size", 3)
    (3, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

from cnnexp import rules
from cnnexp.errors import ConfigError
from cnnexp.functional.geometry import IntPair, Padding

__all__ = ["IntPair", "Padding", "choice", "number", "padding_arg", "positive_int", "positive_pair"]


def positive_int(layer: str, arg: str, value: object) -> int:
    """Return `value` as an int >= 1 (`cnnexp.rules.positive_int`), or raise ConfigError naming `layer` and `arg`."""
    if not rules.positive_int(value):
        raise ConfigError(f"{layer}: {arg} must be an integer >= 1, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def positive_pair(layer: str, arg: str, value: object) -> tuple[int, int]:
    """Return an int or an (h, w) pair as a pair of ints >= 1 (`cnnexp.rules.positive_pair`; Keras takes both)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = list(value)
    if not rules.positive_pair(value):
        raise ConfigError(f"{layer}: {arg} must be an integer >= 1 or a pair [h, w] of them, got {value!r}")
    h, w = value if isinstance(value, list) else (value, value)
    return int(h), int(w)


def padding_arg(layer: str, value: object) -> Padding:
    """Return 'valid' | 'same' (case-insensitive, like Keras), an int >= 0 or an (h, w) pair of them
    (`cnnexp.rules.padding`)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = list(value)
    if not rules.padding(value):
        raise ConfigError(f"{layer}: padding must be one of {list(rules.PADDING_MODES)}, an integer >= 0 or a pair "
                          f"[h, w], got {value!r}")
    if isinstance(value, str):
        return value.lower()
    return (int(value[0]), int(value[1])) if isinstance(value, list) else int(value)  # type: ignore[arg-type]


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
