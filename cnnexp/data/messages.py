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


def warn_files(noun: str, names: Sequence[str], where: str, consequence: str) -> None:
    """Warn once about all `names`, e.g. `2 non-image files in /d were skipped (...): a/x.txt, b/y.csv`.

    Args:
        noun: singular noun phrase ("non-image file"); an "s" is added for several.
        names: the files or folders, relative to `where`.
        where: the folder searched.
        consequence: what happens to them ("were skipped ...").
    """
    if names:
        plural = "" if len(names) == 1 else "s"
        warnings.warn(f"{len(names)} {noun}{plural} in {where} {consequence}: {name_list(list(names))}",
                      DataWarning, stacklevel=3)
