"""LightningModules and callbacks (see docs/architecture.md).

`cnnexp.lit.ImageClassifier` loads on first access, so importing this package does not import lightning.
"""

from __future__ import annotations

from cnnexp.lazy_exports import lazy_exports

_EXPORTS = {
    "ImageClassifier": "cnnexp.lit.classifier",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
