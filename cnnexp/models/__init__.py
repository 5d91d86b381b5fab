"""Network builders: the Keras-style Sequential stack, its summary and Keras weight import and export.

See docs/architecture.md.
"""

from cnnexp.models.keras_weights import load_keras_weights, save_keras_weights
from cnnexp.models.sequential import KerasSequential
from cnnexp.models.summary import summary

__all__ = ["KerasSequential", "load_keras_weights", "save_keras_weights", "summary"]
