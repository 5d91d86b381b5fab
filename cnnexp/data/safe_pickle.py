"""Check that a pickle only rebuilds numpy arrays and plain containers before anything unpickles it for real."""

from __future__ import annotations

import pickle

from cnnexp.errors import DataError

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"), ("builtins", "bytearray"),
}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        return super().find_class(module, name)


def load_data_pickle(path: str, hint: str = "") -> object:
    """Unpickle `path` allowing only numpy arrays, dicts, lists, strings and numbers (no code runs).

    Raises:
        DataError: naming the file, when it is corrupt, truncated or refers to anything else.
    """
    try:
        with open(path, "rb") as f:
            return _DataOnlyUnpickler(f, encoding="latin1").load()
    except Exception as error:  # corrupt, truncated, or a pickle that would run code
        raise DataError(f"{path} is corrupt or not a plain data pickle ({type(error).__name__}: {error}). "
                        f"{hint}".strip()) from None
