"""NanGuard: a NaN/inf loss stops the run with step, epoch and last finite loss; the last good checkpoint stays.
Gradient clipping (trainer.gradient_clip_val) bounds the update."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cnnexp.checkpoints import load_checkpoint
from cnnexp.errors import ConfigError, TrainingError
from cnnexp.lit.callbacks.nan_guard import NanGuard, nonfinite_tensors

from .tiny import TinyModule, loaders, trainer

BATCHES = 8  # 32 samples / batch 4 per epoch


def inject(bad_step: int, value: float):  # noqa: ANN201
    return lambda step, loss: loss * value if step >= bad_step else loss


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nonfinite_loss_stops_with_step_epoch_and_last_finite_loss(tmp_path: Path, value: float) -> None:
    bad_step = BATCHES + 3  # epoch 1, batch 3
    train, val = loaders()
    t = trainer(tmp_path, [NanGuard()], max_epochs=3)
    with pytest.raises(TrainingError) as info:
        t.fit(TinyModule(loss_hook=inject(bad_step, value)), train, val)
    msg = str(info.value)
    assert f"is {value}" in msg and "(epoch 1, batch 3)" in msg
    assert f"last finite loss was" in msg and f"global step {bad_step - 1} (epoch 1)" in msg
    assert f"at global step {bad_step} (epoch 1, batch 3)" in msg
    assert "optimizer.lr" in msg and "gradient_clip_val" in msg
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")  # the end of epoch 0 is kept
    assert last["epoch"] == 0 and last["global_step"] == BATCHES
    assert not nonfinite_tensors(last["state_dict"])


def test_first_loss_nan_says_no_finite_loss(tmp_path: Path) -> None:
    train, val = loaders()
    with pytest.raises(TrainingError, match="no finite loss was seen before it"):
        trainer(tmp_path, [NanGuard()]).fit(TinyModule(loss_hook=inject(0, math.nan)), train, val)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.mark.parametrize("keep_last_good", [True, False])
def test_nonfinite_weights_are_not_saved_over_last_good(tmp_path: Path, keep_last_good: bool) -> None:
    """The loss is finite, but the last step of epoch 1 makes the weights NaN just before the epoch-end save."""

    class Poisoned(TinyModule):
        def on_train_batch_end(self, outputs, batch, batch_idx):  # noqa: ANN001, ANN201
            if self.current_epoch == 1 and batch_idx == BATCHES - 1:
                with torch.no_grad():
                    self.lin.weight.fill_(math.nan)

    train, val = loaders()
    t = trainer(tmp_path, [NanGuard(keep_last_good=keep_last_good)], max_epochs=2)
    if keep_last_good:
        with pytest.raises(TrainingError, match=r"lin.weight hold NaN/inf. Not saving them"):
            t.fit(Poisoned(), train, val)
    else:
        t.fit(Poisoned(), train, val)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert bool(nonfinite_tensors(last["state_dict"])) is not keep_last_good
    assert last["epoch"] == (0 if keep_last_good else 1)


def test_check_every_n_steps_validated() -> None:
    with pytest.raises(ConfigError, match="callbacks.nan_guard.check_every_n_steps=0 is invalid"):
        NanGuard(check_every_n_steps=0)


@pytest.mark.parametrize("clip", [None, 0.01])
def test_gradient_clip_val_bounds_the_update(tmp_path: Path, clip: float | None) -> None:
    """With SGD(lr=1), one step moves the weights by exactly the gradient: its norm is <= clip when clipping."""
    module = TinyModule(lr=1.0, loss_hook=lambda step, loss: loss * 1000.0)
    before = [p.detach().clone() for p in module.parameters()]
    train, val = loaders()
    trainer(tmp_path, max_epochs=1, max_steps=1, gradient_clip_val=clip, gradient_clip_algorithm="norm").fit(
        module, train, val)
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(module.parameters(), before)))
    if clip is None:
        assert step > 1.0
    else:
        assert step == pytest.approx(clip, rel=1e-3)


def test_gradient_clip_val_from_the_config_takes_effect(tmp_path: Path) -> None:
    """`trainer.gradient_clip_val=...` in the composed config reaches the Trainer Hydra builds."""
    from hydra.utils import instantiate

    from .compose import compose

    cfg = compose(["trainer.gradient_clip_val=0.01", f"paths.output_dir={tmp_path}", "trainer.accelerator=cpu",
                   "trainer.devices=1", "trainer.max_epochs=1", "+trainer.max_steps=1"])
    module = TinyModule(lr=1.0, loss_hook=lambda step, loss: loss * 1000.0)
    before = [p.detach().clone() for p in module.parameters()]
    t = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    t.fit(module, *loaders())
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(module.parameters(), before)))
    assert step == pytest.approx(0.01, rel=1e-3)
