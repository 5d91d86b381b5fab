"""cnnexp: the lecture's Keras CNN rebuilt from scratch in PyTorch, run from Hydra configs with Lightning.

Importing the package is cheap: heavy modules (lightning, torchvision) load only where they are used.
"""

__version__ = "0.1.0"

from cnnexp.lazy_exports import lazy_exports  # noqa: E402

# `cnnexp.load_model(path)`: the trained network of a run (see cnnexp/deploy.py); loaded on first use.
__getattr__, _ = lazy_exports(__name__, {"load_model": "cnnexp.deploy"})
