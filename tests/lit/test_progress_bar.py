"""cnnexp's RichProgressBar reads the progress-bar metrics after a training batch only as often as it redraws."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch

from cnnexp.lit import ImageClassifier
from cnnexp.lit.callbacks import progress_bar
from tests.lit.test_classifier import TinyNet, loaders


class Clock:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class CountingBar(progress_bar.RichProgressBar):
    """Records, per metrics reading, whether it happened inside a training batch's end."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reads: list[bool] = []

    def get_metrics(self, trainer, pl_module):
        self.reads.append(self._in_train_batch)
        return super().get_metrics(trainer, pl_module)


@pytest.mark.parametrize("seconds_per_read, batch_reads", [(0.0, 1), (1.0, 12)])
def test_batch_end_reads_follow_the_refresh_rate_and_epoch_ends_always_read(tmp_path, seconds_per_read, batch_reads):
    """Two epochs of six batches, refresh_rate 10 a second: with a clock standing still only the first batch end
    reads the metrics (Lightning's bar reads after all twelve); a clock that moves a second per reading lets every
    batch end read. The epoch ends read the metrics either way, so the last values shown hold the epoch's
    train/loss."""
    L.seed_everything(0)
    bar = CountingBar(refresh_rate=10, leave=False)
    bar.clock = Clock(seconds_per_read)
    module = ImageClassifier(TinyNet((1, 4, 4), 3), functools.partial(torch.optim.SGD, lr=0.05))
    train, val = loaders(3, n=96)
    trainer = L.Trainer(default_root_dir=tmp_path, max_epochs=2, accelerator="cpu", devices=1, logger=False,
                        enable_model_summary=False, enable_checkpointing=False, callbacks=[bar],
                        num_sanity_val_steps=0)
    trainer.fit(module, train, val)
    assert sum(bar.reads) == batch_reads
    assert not all(bar.reads) and len(bar.reads) > batch_reads  # epoch-end readings happened, outside batches
    assert "train/loss" in bar._metric_component._metrics
