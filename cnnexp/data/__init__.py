"""LightningDataModules (see docs/architecture.md and docs/data.md).

The classes load on first access (`cnnexp.data.DigitsDataModule`), so `import cnnexp.data` stays cheap and
does not import lightning or torchvision.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BaseDataModule": "cnnexp.data.base",
    "DigitsDataModule": "cnnexp.data.digits",
    "ImageFolderDataModule": "cnnexp.data.image_folder",
    "split_files": "cnnexp.data.folder_index",
    "index_directory": "cnnexp.data.folder_index",
    "TorchvisionDataModule": "cnnexp.data.torchvision_sets",
    "ShapesDataModule": "cnnexp.data.shapes",
    "EpochShuffleSampler": "cnnexp.data.sampler",
    "ImageTensorDataset": "cnnexp.data.tensor_dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cnnexp.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
