"""Keras-like layers (nn.Modules that own parameters and call cnnexp.functional). See docs/architecture.md.

Each layer is constructed from Keras arguments, then `build(input_shape)` (channels-first, no batch axis)
creates its parameters and returns its output shape.
"""

from cnnexp.layers import activations
from cnnexp.layers.activation import Activation
from cnnexp.layers.average_pooling import AveragePooling2D
from cnnexp.layers.base import Layer
from cnnexp.layers.batch_normalization import BatchNormalization
from cnnexp.layers.conv2d import Conv2D
from cnnexp.layers.dense import Dense
from cnnexp.layers.depthwise_conv2d import DepthwiseConv2D
from cnnexp.layers.dropout import Dropout
from cnnexp.layers.flatten import Flatten
from cnnexp.layers.global_pooling import GlobalAveragePooling2D, GlobalMaxPooling2D
from cnnexp.layers.init import INIT_SCHEMES
from cnnexp.layers.pooling import MaxPool2D
from cnnexp.layers.rescaling import Rescaling
from cnnexp.layers.separable_conv2d import SeparableConv2D

__all__ = [
    "Activation",
    "AveragePooling2D",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "INIT_SCHEMES",
    "Layer",
    "MaxPool2D",
    "Rescaling",
    "SeparableConv2D",
    "activations",
]
