"""Shared argument types of the functional ops.

`IntPair` is what users may pass for a 2-D size (an int means the same value on both axes);
`pair` normalises it once, at the entry of each op, to a `(height, width)` tuple.
"""

from __future__ import annotations

IntPair = int | tuple[int, int]
"""An int (same value for height and width) or an explicit `(h, w)` pair."""


def pair(value: IntPair, name: str = "value") -> tuple[int, int]:
    """Normalise an `IntPair` to a `(h, w)` tuple of Python ints.

    Args:
        value: an int, or a sequence of exactly two ints.
        name: the argument's name, quoted in the error message.

    Raises:
        ValueError: when `value` is neither an int nor a pair of ints.

    Example:
        >>> pair(3), pair((2, 4))
        ((3, 3), (2, 4))
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints (h, w), got {value!r}")
