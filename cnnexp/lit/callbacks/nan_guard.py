"""NanGuard: stop training at the first NaN or inf loss, and never save non-finite weights over a good checkpoint."""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from cnnexp.errors import ConfigError, TrainingError


def _loss_of(outputs: Any) -> torch.Tensor | None:
    """The loss in what `training_step` returned: a tensor, or a dict with a "loss" tensor (None otherwise)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


def nonfinite_tensors(state_dict: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors in `state_dict` that hold a NaN or an inf."""
    return [name for name, t in state_dict.items()
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())]


class NanGuard(Callback):
    """Raise `TrainingError` when the training loss is NaN or inf, with the step, the epoch and the last finite loss.

    The error ends `trainer.fit` at once, so no later checkpoint is written: the last good `last.ckpt` stays on disk.
    With `keep_last_good=True` the guard also refuses any checkpoint whose weights are not finite (weights can turn
    NaN in the optimizer step after the last finite loss, just before an epoch-end save).

    Args:
        check_every_n_steps: check the loss every this many training batches (1: every batch; each check reads
            one number from the device).
        keep_last_good: refuse to write checkpoints with NaN/inf weights, keeping the previous one.
    """

    def __init__(self, check_every_n_steps: int = 1, keep_last_good: bool = True) -> None:
        if not isinstance(check_every_n_steps, int) or check_every_n_steps < 1:
            raise ConfigError(f"callbacks.nan_guard.check_every_n_steps={check_every_n_steps!r} is invalid: expected "
                              f"an integer >= 1. Fix: e.g. callbacks.nan_guard.check_every_n_steps=1")
        self.check_every_n_steps = check_every_n_steps
        self.keep_last_good = keep_last_good
        self.last_finite: tuple[float, int, int] | None = None  # (loss, global step, epoch)
        self._step = 0  # the global step when the current batch started (the optimizer step its loss belongs to)
        self._finite_weights_at: int | None = None  # the global step whose saved weights were all finite

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._step = trainer.global_step

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx % self.check_every_n_steps:
            return
        loss = _loss_of(outputs)
        if loss is None:
            return
        value = loss.item() if loss.numel() == 1 else float(loss.detach().float().mean())  # one op, not three
        if math.isfinite(value):
            self.last_finite = (value, self._step, trainer.current_epoch)
            return
        raise TrainingError(self._message(trainer, value, batch_idx))

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if not self.keep_last_good or trainer.global_step == self._finite_weights_at:
            return  # the weights change only in optimizer steps: the best and the last checkpoint share one check
        bad = nonfinite_tensors(checkpoint.get("state_dict", {}))
        if bad:
            raise TrainingError(
                f"the weights are not finite at global step {trainer.global_step} (epoch {trainer.current_epoch}): "
                f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} hold NaN/inf. Not saving them, so the last "
                f"good checkpoint stays. {self._fix(trainer)}"
            )
        self._finite_weights_at = trainer.global_step

    def _message(self, trainer: Any, value: float, batch_idx: int) -> str:
        where = f"global step {self._step} (epoch {trainer.current_epoch}, batch {batch_idx})"
        if self.last_finite is None:
            before = "no finite loss was seen before it"
        else:
            loss, step, epoch = self.last_finite
            before = f"the last finite loss was {loss:.6g} at global step {step} (epoch {epoch})"
        kept = " The checkpoints written before it are kept." if self.keep_last_good else ""
        return f"the training loss is {value} at {where}; {before}.{kept} {self._fix(trainer)}"

    @staticmethod
    def _fix(trainer: Any) -> str:
        try:
            lr = f" (now {trainer.optimizers[0].param_groups[0]['lr']:g})"
        except (AttributeError, IndexError, KeyError, TypeError):
            lr = ""
        return (f"Fix: lower optimizer.lr{lr}, clip gradients with trainer.gradient_clip_val=1.0, "
                f"or check the data for NaN/inf values.")
