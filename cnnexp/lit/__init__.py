"""LightningModules and callbacks (see docs/architecture.md).

`cnnexp.lit.ImageClassifier` loads on first access, so importing this package does not import lightning.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ImageClassifier": "cnnexp.lit.classifier",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cnnexp.lit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
