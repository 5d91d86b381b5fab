"""LightningDataModules (see docs/architecture.md and docs/data.md).

The classes load on first access (`cnnexp.data.DigitsDataModule`), so `import cnnexp.data` stays cheap and
does not import lightning or torchvision.
"""

from __future__ import annotations

from cnnexp.lazy_exports import lazy_exports

_EXPORTS = {
    "BaseDataModule": "cnnexp.data.base",
    "DigitsDataModule": "cnnexp.data.digits",
    "ImageFolderDataModule": "cnnexp.data.image_folder",
    "split_files": "cnnexp.data.folder_index",
    "index_directory": "cnnexp.data.folder_index",
    "TorchvisionDataModule": "cnnexp.data.torchvision_sets",
    "ShapesDataModule": "cnnexp.data.shapes",
    "RandomImagesDataModule": "cnnexp.data.random_images",
    "EpochShuffleSampler": "cnnexp.data.sampler",
    "ImageTensorDataset": "cnnexp.data.tensor_dataset",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
