"""Keras-like layers (nn.Modules that own parameters and call cnnexp.functional). See docs/architecture.md.

Each layer is constructed from Keras arguments, then `build(input_shape)` (channels-first, no batch axis)
creates its parameters and returns its output shape.
"""

from cnnexp.layers import activations
from cnnexp.layers.activation import Activation
from cnnexp.layers.base import Layer
from cnnexp.layers.conv2d import Conv2D
from cnnexp.layers.dense import Dense
from cnnexp.layers.dropout import Dropout
from cnnexp.layers.flatten import Flatten
from cnnexp.layers.init import INIT_SCHEMES
from cnnexp.layers.pooling import MaxPool2D
from cnnexp.layers.rescaling import Rescaling

__all__ = [
    "Activation",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "INIT_SCHEMES",
    "Layer",
    "MaxPool2D",
    "Rescaling",
    "activations",
]
