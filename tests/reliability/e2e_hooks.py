"""A callback that the end-to-end tests copy into the subprocess's working directory (python -m puts it on
sys.path): it pauses the run at a given global step so the test can signal or kill it at a known point."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback


class PauseAt(Callback):
    """At the start of global step `step`, write `<folder>/paused` (the pid) and wait until `<folder>/go` exists."""

    def __init__(self, step: int, folder: str, timeout: float = 120.0) -> None:
        self.step, self.folder, self.timeout = step, Path(folder), timeout

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step != self.step:
            return
        (self.folder / "paused").write_text(f"{os.getpid()} {trainer.current_epoch} {batch_idx}")
        deadline = time.monotonic() + self.timeout
        while not (self.folder / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
