"""TensorBoard pictures of what the network learned: filters, feature maps, confusion matrix, histograms.

The callback only dispatches: the tensors are turned into images by `pictures.py` and into matplotlib
figures by `figures.py`. It does nothing (and costs nothing) when no TensorBoardLogger is attached, e.g.
under `fast_dev_run`, where Lightning swaps every logger for a dummy one, and on non-zero ranks.

Tags written (step = `trainer.global_step`):
- `filters/<layer>`: the first conv layer's kernels as an image grid, each logged validation epoch;
- `feature_maps/input` and `feature_maps/<layer>`: one fixed validation image and every conv layer's
  activations for it (the lecture's "feature maps");
- `val/confusion_matrix`: a figure with class names (rows true, columns predicted);
- `val/misclassified`: a figure of a few wrong validation predictions, captioned true / predicted;
- `weights/<param>` and `grads/<param>`: histograms every `histogram_every_n_steps` optimizer steps.

Under DDP only rank zero draws, so the confusion matrix and misclassified images cover rank zero's share of
the validation set.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor, nn

from cnnexp.lit.callbacks.pictures import confusion_counts, feature_maps_grid, filters_grid, normalize01, upscale


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


class TensorBoardPictures(Callback):
    """Log images of filters and feature maps, a confusion matrix, misclassified images and histograms.

    Args:
        every_n_epochs: log the validation pictures on epochs 0, n, 2n, ...
        histogram_every_n_steps: log weight and gradient histograms every n optimizer steps (0: never).
        num_misclassified: how many wrong validation predictions to show (0: none).
        max_feature_maps: channels shown per conv layer in the feature-map grids.
        filters, feature_maps, confusion_matrix: switch each picture on or off.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        histogram_every_n_steps: int = 100,
        num_misclassified: int = 8,
        max_feature_maps: int = 32,
        filters: bool = True,
        feature_maps: bool = True,
        confusion_matrix: bool = True,
    ) -> None:
        super().__init__()
        self.every_n_epochs = max(1, every_n_epochs)
        self.histogram_every_n_steps = histogram_every_n_steps
        self.num_misclassified = num_misclassified
        self.max_feature_maps = max_feature_maps
        self.filters = filters
        self.feature_maps = feature_maps
        self.confusion_matrix = confusion_matrix
        self._sample: Tensor | None = None  # (1, C, H, W): the fixed validation image, kept on the CPU
        self._preds: list[Tensor] = []
        self._targets: list[Tensor] = []
        self._wrong: list[tuple[Tensor, int, int]] = []  # (image (C, H, W), true, predicted)
        self._num_classes: int | None = None

    # ---- validation pictures -------------------------------------------------------------------
    def _active(self, trainer: Trainer) -> bool:
        return (
            not trainer.sanity_checking
            and trainer.current_epoch % self.every_n_epochs == 0
            and tensorboard_writer(trainer) is not None
        )

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._preds, self._targets, self._wrong = [], [], []

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if dataloader_idx != 0 or not self._active(trainer):
            return
        x, y = batch[0], batch[1]  # (N, C, H, W), (N,)
        if self._sample is None:
            self._sample = x[:1].detach().cpu()
        if not self.confusion_matrix and self.num_misclassified <= 0:
            return  # no picture needs the predictions: skip the extra forward pass
        preds = self._predictions(pl_module, outputs, x)  # (N,)
        self._preds.append(preds.cpu())
        self._targets.append(y.detach().cpu())
        need = self.num_misclassified - len(self._wrong)
        if need > 0:
            wrong = (preds != y).nonzero().flatten()[:need].tolist()
            self._wrong += [(x[i].detach().cpu(), int(y[i]), int(preds[i])) for i in wrong]

    def _predictions(self, pl_module: LightningModule, outputs: Any, x: Tensor) -> Tensor:
        """Predicted classes `(N,)` from the step's outputs if it returned them, else one extra forward pass."""
        if isinstance(outputs, dict):
            if "preds" in outputs:
                return outputs["preds"].detach()
            if "logits" in outputs:
                outputs = outputs["logits"]
        if isinstance(outputs, Tensor) and outputs.ndim == 2 and outputs.shape[0] == x.shape[0]:
            logits = outputs.detach()  # (N, K)
        else:
            with torch.no_grad():
                logits = pl_module(x)  # (N, K)
        self._num_classes = logits.shape[1]
        return logits.argmax(dim=1)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active(trainer):
            return
        writer, step = tensorboard_writer(trainer), trainer.global_step
        layers = conv_layers(pl_module)
        if self.filters and layers:
            name, first = layers[0]
            writer.add_image(f"filters/{name}", filters_grid(first.weight), step)
        if self.feature_maps and layers and self._sample is not None:
            self._log_feature_maps(writer, step, pl_module, layers)
        if not self._targets:
            return
        class_names = self._class_names(trainer)
        if self.confusion_matrix:
            from cnnexp.lit.callbacks.figures import confusion_matrix_figure

            counts = confusion_counts(torch.cat(self._preds), torch.cat(self._targets), len(class_names))
            writer.add_figure("val/confusion_matrix", confusion_matrix_figure(counts, class_names), step)
        if self._wrong:
            from cnnexp.lit.callbacks.figures import image_grid_figure

            images = normalize01(torch.stack([img for img, _, _ in self._wrong]))  # (M, C, H, W)
            titles = [f"true: {class_names[t]}\npred: {class_names[p]}" for _, t, p in self._wrong]
            writer.add_figure("val/misclassified", image_grid_figure(images, titles), step)

    def _log_feature_maps(
        self, writer: Any, step: int, pl_module: LightningModule, layers: list[tuple[str, nn.Module]]
    ) -> None:
        captured: dict[str, Tensor] = {}
        hooks = [
            layer.register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach()))
            for name, layer in layers
        ]
        try:
            with torch.no_grad():
                pl_module(self._sample.to(pl_module.device))
        finally:
            for hook in hooks:
                hook.remove()
        writer.add_image("feature_maps/input", upscale(normalize01(self._sample), 48)[0], step)
        for name, _ in layers:
            if name in captured:  # (1, C, H, W)
                writer.add_image(f"feature_maps/{name}", feature_maps_grid(captured[name][0], self.max_feature_maps), step)

    def _class_names(self, trainer: Trainer) -> list[str]:
        seen = int(max(torch.cat(self._preds).max(), torch.cat(self._targets).max())) + 1
        names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
        if names and len(names) >= seen:
            return [str(n) for n in names]
        return [str(i) for i in range(max(seen, self._num_classes or 0))]

    # ---- histograms ------------------------------------------------------------------------------
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        n = self.histogram_every_n_steps
        if n <= 0 or trainer.global_step % n != 0:
            return
        writer = tensorboard_writer(trainer)
        if writer is None:
            return
        for name, param in pl_module.named_parameters():
            if isinstance(param, nn.parameter.UninitializedParameter):
                continue
            writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), trainer.global_step)
            if param.grad is not None:
                writer.add_histogram(f"grads/{name}", param.grad.detach().float().cpu(), trainer.global_step)
