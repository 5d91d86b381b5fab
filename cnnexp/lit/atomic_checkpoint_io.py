"""A Lightning CheckpointIO that writes atomically and loads without executing code.

Plug it in with `trainer.plugins=[{_target_: cnnexp.lit.atomic_checkpoint_io.AtomicCheckpointIO}]` (or
`Trainer(plugins=[AtomicCheckpointIO()])`). Every checkpoint Lightning writes (ModelCheckpoint's `last.ckpt`
and best files, `trainer.save_checkpoint`, the interrupt checkpoint) then goes through
`cnnexp.checkpoints.atomic_torch_save`, and every checkpoint it reads (`trainer.fit(ckpt_path=...)`,
`trainer.test(ckpt_path="best")`) through `cnnexp.checkpoints.load_checkpoint`, i.e. `torch.load(weights_only=True)`
with cnnexp's allowlist, whatever `weights_only` the caller passed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from cnnexp.checkpoints import atomic_torch_save, load_checkpoint

log = logging.getLogger(__name__)


class AtomicCheckpointIO(CheckpointIO):
    """Save = temp file + fsync + `os.replace`; load = `torch.load(weights_only=True)` with an allowlist.

    Args:
        map_location: where tensors are loaded (default: the CPU; Lightning moves them to the device afterwards).
    """

    def __init__(self, map_location: Any = "cpu") -> None:
        self.map_location = map_location

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write `checkpoint` to `path` atomically (the old file stays intact until the new one is complete)."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r}).")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        """Load `path` with `weights_only=True`; `weights_only=False` is refused (logged, and loaded safely anyway).

        Raises:
            ConfigError / UnsafeCheckpointError: missing, corrupt, or code-executing checkpoints.
        """
        if weights_only is False:
            log.warning("AtomicCheckpointIO loads %s with weights_only=True regardless of weights_only=False.", path)
        return load_checkpoint(path, map_location=self.map_location if map_location is None else map_location)

    def remove_checkpoint(self, path: Any) -> None:
        """Delete `path` (ModelCheckpoint calls this for checkpoints that fall out of its top k)."""
        Path(path).unlink(missing_ok=True)
