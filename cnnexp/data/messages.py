"""Warnings about skipped files: one warning per case, giving the count and the names."""

from __future__ import annotations

import warnings
from collections.abc import Sequence


class DataWarning(UserWarning):
    """Some input files were skipped or some classes are empty; training goes on without them."""


def name_list(names: Sequence[str], limit: int = 10) -> str:
    """`a, b, c` or `a, b, ... (and 7 more)` for long lists."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... (and {len(names) - limit} more)"


def warn_files(what: str, names: Sequence[str], where: str, consequence: str) -> None:
    """Warn once about `len(names)` files, e.g. `skipped 2 non-image files in /d: a.txt, b.csv (...)`."""
    if names:
        noun = "file" if len(names) == 1 else "files"
        warnings.warn(f"{len(names)} {what} {noun} in {where} {consequence}: {name_list(list(names))}",
                      DataWarning, stacklevel=3)
