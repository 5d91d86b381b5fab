"""User-facing errors: each message names the problem and the fix.

The entry points (`python -m cnnexp`, `python -m cnnexp.evaluate`, `python -m cnnexp.report`) print these as
one `error: ...` line and exit with status 2 instead of showing a traceback.
"""


class CnnexpError(Exception):
    """Base class of every error that is the user's input, not a bug."""


class ConfigError(CnnexpError, ValueError):
    """A config value is missing, of the wrong type, or out of range."""


class ShapeError(CnnexpError, ValueError):
    """A layer stack cannot be built for the given input shape."""


class DataError(CnnexpError):
    """A data set is missing, empty or corrupt."""


class TrainingError(CnnexpError, RuntimeError):
    """Training cannot go on (for example a NaN loss)."""
