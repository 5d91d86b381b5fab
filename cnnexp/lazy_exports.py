"""Package attributes that import their module on first access, so `import cnnexp.<package>` stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level `__getattr__` and `__dir__` for `package` that load `exports[name]` (a module path) on use.

    Example (in a package's `__init__.py`):
        >>> __getattr__, __dir__ = lazy_exports(__name__, {"ImageClassifier": "cnnexp.lit.classifier"})
    """
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
