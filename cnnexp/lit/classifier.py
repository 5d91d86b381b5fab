"""ImageClassifier: the LightningModule that trains any network returning class logits.

The network, the optimizer and the scheduler are injected (Hydra builds them from `model.net`,
`optimizer` and `scheduler`, the last two with `_partial_: true`), so this file only holds the loop:
one `model_step` shared by train, validation and test; torchmetrics accuracy; cross-entropy on logits.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from cnnexp.lit.batched_updates import BatchedUpdates
from cnnexp.lit.nvml_probe import drop_failing_nvml_probe

drop_failing_nvml_probe()  # after `import lightning`, which sets the variable: no failed NVML load per optimizer step

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
StepOutput = dict[str, torch.Tensor]  # {"loss": (), "logits": (N, K) detached, "targets": (N,)}


def accuracy_metrics(num_classes: int) -> MetricCollection:
    """Top-1 accuracy `acc`, plus top-5 `acc_top5` when there are more than 5 classes."""
    metrics: dict[str, MulticlassAccuracy] = {
        "acc": MulticlassAccuracy(num_classes=num_classes, top_k=1, average="micro")}
    if num_classes > 5:
        metrics["acc_top5"] = MulticlassAccuracy(num_classes=num_classes, top_k=5, average="micro")
    return MetricCollection(metrics, compute_groups=False)


def compile_backend(name: str) -> str:
    """`name` if torch.compile knows that backend, else ConfigError listing the choices (`model.compile=...`)."""
    from cnnexp.errors import ConfigError

    choices = torch.compiler.list_backends(exclude_tags=())
    if name not in choices:
        raise ConfigError(f"model.compile={name} is not a torch.compile backend. Fix: model.compile=true (inductor), "
                          f"false, or one of {', '.join(c for c in choices if 'TESTING' not in c)}")
    return name


class ImageClassifier(L.LightningModule):
    """Classify images with an injected network; logs `{train,val,test}/{loss,acc[,acc_top5]}` and `val/acc_best`.

    Args:
        net: an nn.Module mapping images to logits, with `num_classes` (and `input_shape` `(C, H, W)`,
            used for `example_input_array` so TensorBoard can draw the graph), e.g. KerasSequential.
        optimizer: a partial optimizer, called with the parameters (`torch.optim.Adam` with `_partial_`).
        scheduler: a partial LR scheduler called with the optimizer, stepped each epoch; `None` or an
            empty mapping (what `scheduler: none` composes to) means a constant learning rate.
        conv_impl: which convolution the net uses ("custom" | "naive" | "torch"). Recorded here so that
            sweeps and the saved hyperparameters say `model.conv_impl`; the net config interpolates it.
        init: the weight initialisation scheme of the net ("keras" | "torch"), recorded the same way.
        dropout: the rate of the net's Dropout layer (`model.dropout`, 0 = none), recorded the same way.
        compile: `torch.compile` the net in place with `fullgraph=True` (`model.compile=true`: inductor; or a
            backend name, e.g. `model.compile=aot_eager`); the state dict keeps its keys, so checkpoints load into
            an uncompiled net (`cnnexp.load_model`) as before.

    Shape:
        - Input: `(N, C, H, W)` float32 (0..255 when the net starts with a Rescaling layer).
        - Output: logits `(N, K)`.
    """

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory, scheduler: SchedulerFactory | None = None,
                 conv_impl: str = "custom", init: str = "keras", dropout: float = 0.0,
                 compile: bool | str = False) -> None:
        super().__init__()
        # Only plain values go into the checkpoint, so it loads with torch.load(weights_only=True); the run's
        # saved config (config_resolved.yaml) describes the net, optimizer and scheduler (and model.compile, which
        # says how the net ran, not what it is).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "compile"], logger=False)
        self.net = net
        if compile:  # cnnexp's conv and pool are torch.library ops: one graph, no breaks
            net.compile(fullgraph=True, **({"backend": compile_backend(compile)} if isinstance(compile, str) else {}))
        self.optimizer_factory = optimizer
        self.scheduler_factory = None if scheduler is None or (isinstance(scheduler, Mapping) and not scheduler) \
            else scheduler
        self.num_classes = int(net.num_classes)
        input_shape = getattr(net, "input_shape", None)
        if input_shape is not None:
            self.example_input_array = torch.zeros(1, *input_shape)  # (1, C, H, W)

        metrics = accuracy_metrics(self.num_classes)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.train_loss = MeanMetric()  # the epoch's batch-size weighted mean loss
        self.train_updates = BatchedUpdates(self.train_metrics, self.train_loss)  # a few updates per epoch
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # kept in checkpoints, so a resumed run keeps its best

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, hparams_file: Any = None,
                             strict: bool | None = None, **kwargs: Any) -> ImageClassifier:
        """Lightning's `load_from_checkpoint` (of a checkpoint or a run folder); the net comes from the run's config.

        A checkpoint keeps only plain hyperparameters, so unless `net=` / `optimizer=` are passed, the network is
        rebuilt from the run's saved config as `cnnexp.load_model` does, and the optimizer is
        `functools.partial(torch.optim.Adam)` (pass `optimizer=` to resume training with another).
        """
        from cnnexp.deploy import find_checkpoint, run_network

        if isinstance(checkpoint_path, (str, os.PathLike)):
            checkpoint_path = find_checkpoint(checkpoint_path)  # a run folder means its best checkpoint
        if "net" not in kwargs:
            kwargs["net"] = run_network(checkpoint_path)
        kwargs.setdefault("optimizer", functools.partial(torch.optim.Adam))
        return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `(N, K)` for images `(N, C, H, W)`."""
        return self.net(x)

    def model_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The step every stage shares: `(loss (), logits (N, K), targets (N,))`."""
        x, y = batch  # (N, C, H, W), (N,)
        logits = self(x)  # (N, K)
        loss = F.cross_entropy(logits, y)
        return loss, logits, y

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str,
                     metrics: MetricCollection) -> StepOutput:
        loss, logits, y = self.model_step(batch)
        metrics.update(logits, y)
        n = y.shape[0]
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage == "train",
                 sync_dist=stage != "train", batch_size=n)
        for name, metric in metrics.items():  # "val/acc", "val/acc_top5", ...
            # the progress bar shows train/loss, val/acc and val/acc_best
            self.log(name, metric, on_step=False, on_epoch=True, prog_bar=name == "val/acc", batch_size=n)
        return {"loss": loss, "logits": logits.detach(), "targets": y}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The loss; `train/loss` (batch-size weighted mean) and the train metrics are logged once per epoch by
        `on_train_epoch_end`: the same values `self.log(..., on_epoch=True)` per step gives, without its cost on
        every step (a tenth of a small model's step), and updated a few times per epoch (`BatchedUpdates`)."""
        loss, logits, y = self.model_step(batch)
        self.train_updates.add(logits.detach(), y, loss.detach())
        return loss

    def on_train_epoch_end(self) -> None:
        self.train_updates.flush()
        if self.train_loss.update_called:
            self.log("train/loss", self.train_loss.compute(), prog_bar=True)
            self.log_dict(self.train_metrics.compute())
        self.train_loss.reset()
        self.train_metrics.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> StepOutput:
        """`{"loss", "logits" (N, K), "targets" (N,)}`: callbacks (the TensorBoard pictures) reuse the logits
        in `on_validation_batch_end` instead of running the network again."""
        return self._shared_step(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return  # the sanity check's two batches must not count as the best accuracy
        self.val_acc_best.update(self.val_metrics["acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> StepOutput:
        """The same outputs as `validation_step`, for the test set."""
        return self._shared_step(batch, "test", self.test_metrics)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities `(N, K)` (a batch may be `(x, y)` or just `x`)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.softmax(self(x), dim=1)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1, "monitor": "val/loss"}}
