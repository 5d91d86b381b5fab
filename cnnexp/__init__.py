"""cnnexp: the lecture's Keras CNN rebuilt from scratch in PyTorch, run from Hydra configs with Lightning.

Importing the package is cheap: heavy modules (lightning, torchvision) load only where they are used.
"""

__version__ = "0.1.0"
