"""TensorBoard pictures of what the network learned: filters, feature maps, confusion matrix, histograms.

The callback only collects and dispatches: tensors become images in `pictures.py` (grids) and `figures.py`
(pictures with text, drawn with Pillow). It never runs the network itself:
- predictions come from the logits `validation_step` returns (`{"loss", "logits", ...}`, as
  `ImageClassifier` does); a step that returns none gets no confusion matrix or misclassified images;
- feature maps are the activations of the first validation image, caught by forward hooks on the conv
  layers while the first validation batch goes through the network anyway.
It does nothing (and costs nothing) when no TensorBoardLogger is attached, e.g. under `fast_dev_run`, where
Lightning swaps every logger for a dummy one, and on non-zero ranks.

When (step = `trainer.global_step` at the end of that validation):
- the first validation epoch, every `every_n_epochs`-th, and the last one of fit, under the tags below;
- the best validation epoch (by `monitor` and `mode`: what ModelCheckpoint keeps and `test` reports),
  drawn once at the end of fit under the same tags prefixed with `best/`, at that epoch's step.

Tags:
- `filters/<layer>`: the first conv layer's kernels as an image grid;
- `feature_maps/input` and `feature_maps/<layer>`: the first validation image and every conv layer's
  activations for it (the lecture's "feature maps");
- `val/confusion_matrix`: counts with class names (rows true, columns predicted);
- `val/misclassified`: a few wrong validation predictions, captioned true / predicted;
- `weights/<param>` and `grads/<param>`: histograms (the gradients of the epoch's last training step), drawn
  with the pictures above except the best epoch's.
Collecting costs next to nothing each epoch (argmax of the logits, a handful of images, a copy of the weights
and of the last gradients); only drawing costs.

Under DDP only rank zero draws, so the confusion matrix and misclassified images cover rank zero's share of
the validation set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from cnnexp.lit.callbacks.pictures import feature_maps_grid, filters_grid, normalize01, upscale


def conv_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The conv layers of a model in forward order: `cnnexp.layers.Conv2D` and `torch.nn.Conv2d`, with names."""
    from cnnexp.layers import Conv2D

    return [(name, m) for name, m in module.named_modules() if isinstance(m, (nn.Conv2d, Conv2D))]


def tensorboard_writer(trainer: Trainer) -> Any | None:
    """The SummaryWriter of the trainer's first TensorBoardLogger on rank zero, else None."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def step_logits(outputs: Any, batch_size: int) -> Tensor | None:
    """The logits `(N, K)` a validation step returned (`{"logits": ...}` or the tensor itself), else None."""
    if isinstance(outputs, dict):
        outputs = outputs.get("logits")
    if isinstance(outputs, Tensor) and outputs.ndim == 2 and outputs.shape[0] == batch_size:
        return outputs.detach()
    return None


@dataclass
class Snapshot:
    """What one validation epoch's pictures are drawn from (all on the CPU)."""

    epoch: int
    step: int
    filters: Tensor | None = None  # (C_out, C_in, kH, kW): the first conv layer's weight
    sample: Tensor | None = None  # (1, C, H, W): the first validation image
    maps: dict[str, Tensor] = field(default_factory=dict)  # layer -> (C', H, W) activations for the sample
    preds: list[Tensor] = field(default_factory=list)  # (N,) per batch
    targets: list[Tensor] = field(default_factory=list)  # (N,) per batch
    wrong: list[tuple[Tensor, int, int]] = field(default_factory=list)  # (image (C, H, W), true, predicted)
    num_classes: int = 0
    params: dict[str, Tensor] = field(default_factory=dict)  # name -> weights, for the histograms
    grads: dict[str, Tensor] = field(default_factory=dict)  # name -> gradients of the epoch's last training step


class TensorBoardPictures(Callback):
    """Log images of filters and feature maps, a confusion matrix, misclassified images and histograms.

    Args:
        every_n_epochs: draw on validation epochs 0, n, 2n, ... and on the last one.
        histograms: log weight and gradient histograms with those pictures.
        num_misclassified: how many wrong validation predictions to show (0: none).
        max_feature_maps: channels shown per conv layer in the feature-map grids.
        filters, feature_maps, confusion_matrix: switch each picture on or off.
        best: also draw the best validation epoch's pictures (tags `best/...`) at the end of fit.
        monitor, mode: the metric that picks the best epoch and whether higher (max) or lower (min) is better.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        histograms: bool = True,
        num_misclassified: int = 8,
        max_feature_maps: int = 32,
        filters: bool = True,
        feature_maps: bool = True,
        confusion_matrix: bool = True,
        best: bool = True,
        monitor: str = "val/acc",
        mode: str = "max",
    ) -> None:
        super().__init__()
        if mode not in ("max", "min"):
            from cnnexp.errors import ConfigError

            raise ConfigError(f"callbacks.tensorboard_pictures.mode={mode!r} is invalid. Fix: use max or min.")
        self.every_n_epochs = max(1, every_n_epochs)
        self.histograms = histograms
        self.num_misclassified = num_misclassified
        self.max_feature_maps = max_feature_maps
        self.filters = filters
        self.feature_maps = feature_maps
        self.confusion_matrix = confusion_matrix
        self.best = best
        self.monitor, self.mode = monitor, mode
        self._current: Snapshot | None = None  # being collected during a validation epoch
        self._last: Snapshot | None = None  # the latest finished validation epoch
        self._best: Snapshot | None = None
        self._best_value = math.nan
        self._drawn_epochs: set[int] = set()
        self._hooks: list[Any] = []
        self._grads: dict[str, Tensor] = {}
        self._warned = False

    @property
    def _needs_predictions(self) -> bool:
        return self.confusion_matrix or self.num_misclassified > 0

    # ---- collecting, every validation epoch of fit ---------------------------------------------------
    def _collecting(self, trainer: Trainer) -> bool:
        return not trainer.sanity_checking and tensorboard_writer(trainer) is not None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last = self._best = None
        self._best_value = math.nan
        self._drawn_epochs = set()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Keep the gradients of an epoch's last step (Lightning zeroes them before validation)."""
        if not self.histograms or batch_idx + 1 < trainer.num_training_batches or not self._collecting(trainer):
            return
        self._grads = {name: p.grad.detach().float().cpu().clone() for name, p in pl_module.named_parameters()
                       if p.grad is not None}

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._current = None
        if self._collecting(trainer):
            self._current = Snapshot(epoch=trainer.current_epoch, step=trainer.global_step)

    def on_validation_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        snap = self._current
        if snap is None or dataloader_idx != 0 or batch_idx != 0 or not self.feature_maps:
            return
        snap.sample = batch[0][:1].detach().cpu()  # (1, C, H, W)

        def keep(name: str):
            def hook(_module: nn.Module, _inputs: Any, out: Tensor) -> None:
                snap.maps[name] = out[0, : self.max_feature_maps].detach().float().cpu()  # (C', H, W)
            return hook

        self._hooks = [layer.register_forward_hook(keep(name)) for name, layer in conv_layers(pl_module)]

    def _remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._remove_hooks()
        snap = self._current
        if snap is None or dataloader_idx != 0 or not self._needs_predictions:
            return
        x, y = batch[0], batch[1]  # (N, C, H, W), (N,)
        logits = step_logits(outputs, y.shape[0])  # (N, K)
        if logits is None:
            if not self._warned:
                rank_zero_warn("TensorBoardPictures: validation_step returned no logits, so there is no confusion "
                               "matrix and no misclassified images (the callback never runs the network again). "
                               "Fix: return {'loss': loss, 'logits': logits} from validation_step.")
                self._warned = True
            return
        preds = logits.argmax(dim=1)  # (N,)
        snap.num_classes = logits.shape[1]
        snap.preds.append(preds.cpu())
        snap.targets.append(y.detach().cpu())
        need = self.num_misclassified - len(snap.wrong)
        if need > 0:
            wrong = (preds != y).nonzero().flatten()[:need].tolist()
            snap.wrong += [(x[i].detach().cpu(), int(y[i]), int(preds[i])) for i in wrong]

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remove_hooks()
        snap, self._current = self._current, None
        if snap is None:
            return
        layers = conv_layers(pl_module)
        if self.filters and layers:
            snap.filters = layers[0][1].weight.detach().float().cpu().clone()
        if self.histograms:
            snap.params = {name: p.detach().float().cpu().clone() for name, p in pl_module.named_parameters()
                           if not isinstance(p, nn.parameter.UninitializedParameter)}
            snap.grads, self._grads = self._grads, {}
        self._last = snap
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            value = float(value)
            better = value > self._best_value if self.mode == "max" else value < self._best_value
            if math.isnan(self._best_value) or better:
                self._best, self._best_value = snap, value
        if trainer.state.fn != "fit" or snap.epoch % self.every_n_epochs == 0:
            self._draw(trainer, pl_module, snap)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        last, best = self._last, self._best
        if last is not None and last.epoch not in self._drawn_epochs:
            self._draw(trainer, pl_module, last)
        if self.best and best is not None:
            self._draw(trainer, pl_module, best, prefix="best/")

    # ---- drawing -------------------------------------------------------------------------------------
    def _draw(self, trainer: Trainer, pl_module: LightningModule, snap: Snapshot, prefix: str = "") -> None:
        writer = tensorboard_writer(trainer)
        if writer is None:
            return
        if not prefix:
            self._drawn_epochs.add(snap.epoch)
        step = snap.step
        layers = conv_layers(pl_module)
        if snap.filters is not None and layers:
            writer.add_image(f"{prefix}filters/{layers[0][0]}", filters_grid(snap.filters), step)
        if snap.sample is not None and snap.maps:
            writer.add_image(f"{prefix}feature_maps/input", upscale(normalize01(snap.sample), 48)[0], step)
            for name, _ in layers:
                if name in snap.maps:
                    writer.add_image(f"{prefix}feature_maps/{name}", feature_maps_grid(snap.maps[name]), step)
        if snap.targets:
            self._draw_predictions(trainer, writer, snap, prefix)
        if not prefix:
            for name, values in snap.params.items():
                writer.add_histogram(f"weights/{name}", values, step)
            for name, values in snap.grads.items():
                writer.add_histogram(f"grads/{name}", values, step)

    def _draw_predictions(self, trainer: Trainer, writer: Any, snap: Snapshot, prefix: str) -> None:
        from cnnexp.lit.callbacks.figures import captioned_grid, confusion_matrix_image

        preds, targets = torch.cat(snap.preds), torch.cat(snap.targets)  # (N,), (N,)
        names = self._class_names(trainer, snap.num_classes)
        if self.confusion_matrix:
            from torchmetrics.functional.classification import multiclass_confusion_matrix

            counts = multiclass_confusion_matrix(preds, targets, num_classes=len(names))  # (K, K): rows true
            title = f"epoch {snap.epoch}" + (" (best)" if prefix else "")
            writer.add_image(f"{prefix}val/confusion_matrix", confusion_matrix_image(counts, names, title), snap.step)
        if snap.wrong:
            images = normalize01(torch.stack([img for img, _, _ in snap.wrong]))  # (M, C, H, W)
            captions = [f"true: {names[t]}\npred: {names[p]}" for _, t, p in snap.wrong]
            writer.add_image(f"{prefix}val/misclassified", captioned_grid(images, captions), snap.step)

    @staticmethod
    def _class_names(trainer: Trainer, num_classes: int) -> list[str]:
        names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
        if names and len(names) >= num_classes:
            return [str(n) for n in names]
        return [str(i) for i in range(num_classes)]
