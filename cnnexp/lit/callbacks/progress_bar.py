"""RichProgressBar: Lightning's rich progress bar, reading the logged metrics only as often as it redraws."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import RichProgressBar as LightningRichProgressBar


class RichProgressBar(LightningRichProgressBar):
    """Lightning's `RichProgressBar`, except that after a training batch the metrics shown beside the bar are read
    at most `refresh_rate` times a second (the rate the bar is redrawn at), not after every batch.

    Lightning collects the progress-bar metrics after each batch (a dictionary of the logged values, each tensor
    turned into a Python number: a device read on CUDA); with short batches most of those readings are never
    drawn. The bar's position still moves every batch, and the epoch ends (training, validation, test) read the
    metrics as before, so the last values shown are always current.
    """

    clock = staticmethod(time.monotonic)  # seconds; tests set their own

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_train_batch = False
        self._metrics_read_at = float("-inf")

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._in_train_batch = True
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._in_train_batch = False

    def _update_metrics(self, trainer: Any, pl_module: Any) -> None:
        now = self.clock()
        if self._in_train_batch and now - self._metrics_read_at < 1.0 / max(self.refresh_rate, 1e-9):
            return
        self._metrics_read_at = now
        super()._update_metrics(trainer, pl_module)
