"""A tiny LightningModule and Trainer factory for in-process callback tests (CPU, a few batches, seconds)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class TinyModule(L.LightningModule):
    """Linear 4 -> 2 with cross-entropy; `loss_hook(step, loss)` may replace the loss (to inject NaN)."""

    def __init__(self, lr: float = 0.1, loss_hook: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
                 optimizer: str = "sgd") -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.lr, self.loss_hook, self.optimizer_name = lr, loss_hook, optimizer

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch  # (N, 4), (N,)
        loss = torch.nn.functional.cross_entropy(self.lin(x), y)
        if self.loss_hook is not None:
            loss = self.loss_hook(self.global_step, loss)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val/loss", torch.nn.functional.cross_entropy(self.lin(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cls = torch.optim.SGD if self.optimizer_name == "sgd" else torch.optim.Adam
        return cls(self.parameters(), lr=self.lr)


def loaders(n: int = 32, batch_size: int = 4, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(seed)
    ds = TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g))
    return DataLoader(ds, batch_size=batch_size), DataLoader(ds, batch_size=batch_size)


def trainer(root: Path, callbacks: list[Any] = (), **kwargs: Any) -> L.Trainer:
    """A quiet CPU trainer writing to `root`; ModelCheckpoint keeps `root/checkpoints/last.ckpt` every epoch."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)  # monitor None: saves every epoch
    options = dict(default_root_dir=root, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, max_epochs=3, num_sanity_val_steps=0)
    options.update(kwargs)
    return L.Trainer(callbacks=[*callbacks, ckpt], **options)
