"""ImageClassifier on a tiny stand-in network: logged metrics, val/acc_best, schedulers, safe checkpoints."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnexp.lit import ImageClassifier


class TinyNet(nn.Module):
    """Flatten + Linear with the attributes ImageClassifier reads from KerasSequential."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.input_shape, self.num_classes = input_shape, num_classes
        c, h, w = input_shape
        self.fc = nn.Linear(c * h * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))  # (N, K)


def loaders(num_classes: int, n: int = 96) -> tuple[DataLoader, DataLoader]:
    """Linearly separable blobs: class k has a bright pixel k (so every class can be learned)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % num_classes
    x = torch.rand(n, 1, 4, 4, generator=g)
    x.view(n, -1)[torch.arange(n), y] += 3.0
    ds = TensorDataset(x, y)
    return DataLoader(ds, batch_size=16, shuffle=True, generator=g), DataLoader(ds, batch_size=32)


class EpochRecorder(L.Callback):
    """Records val/acc after each validation epoch (not during the sanity check)."""

    def __init__(self) -> None:
        self.val_acc: list[float] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.val_acc.append(float(pl_module.val_metrics["acc"].compute()))


def make_trainer(tmp_path, epochs: int, callbacks=()) -> L.Trainer:
    return L.Trainer(default_root_dir=tmp_path, max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                     enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks),
                     enable_checkpointing=False)


def make_module(num_classes: int, lr: float = 0.05, scheduler=None) -> ImageClassifier:
    return ImageClassifier(TinyNet((1, 4, 4), num_classes), functools.partial(torch.optim.SGD, lr=lr),
                           scheduler=scheduler)


@pytest.mark.parametrize("num_classes, top5", [(3, False), (10, True)])
def test_logs_every_metric_and_top5_only_above_five_classes(tmp_path, num_classes, top5):
    L.seed_everything(0)
    module = make_module(num_classes)
    recorder = EpochRecorder()
    trainer = make_trainer(tmp_path, epochs=3, callbacks=[recorder])
    train, val = loaders(num_classes)
    trainer.fit(module, train, val)
    logged = set(trainer.callback_metrics)
    for key in ["train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best"]:
        assert key in logged
    assert ("train/acc_top5" in logged) == top5 and ("val/acc_top5" in logged) == top5
    assert float(trainer.callback_metrics["val/acc_best"]) == pytest.approx(max(recorder.val_acc))
    val_acc = float(trainer.callback_metrics["val/acc"])  # the last epoch's, with the weights test will use
    test = trainer.test(module, val, verbose=False)[0]
    assert set(test) == {"test/loss", "test/acc"} | ({"test/acc_top5"} if top5 else set())
    assert test["test/acc"] == pytest.approx(val_acc)  # the same weights on the same loader


def test_learns_and_best_is_a_running_max(tmp_path):
    L.seed_everything(0)
    module = make_module(4, lr=0.2)
    recorder = EpochRecorder()
    trainer = make_trainer(tmp_path, epochs=6, callbacks=[recorder])
    train, val = loaders(4)
    trainer.fit(module, train, val)
    assert recorder.val_acc[-1] > 0.9  # separable data: a real learning check, not a smoke test
    assert float(module.val_acc_best.compute()) == pytest.approx(max(recorder.val_acc))


@pytest.mark.parametrize("scheduler, changes", [
    (None, False),
    ({}, False),  # what `scheduler: none` composes to
    (functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5), True),
])
def test_scheduler_is_optional(tmp_path, scheduler, changes):
    module = make_module(3, lr=0.1, scheduler=scheduler)
    trainer = make_trainer(tmp_path, epochs=2)
    trainer.fit(module, *loaders(3))
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert (lr != pytest.approx(0.1)) == changes
    assert len(trainer.lr_scheduler_configs) == int(changes)


def test_checkpoint_loads_with_weights_only_and_keeps_best(tmp_path):
    module = make_module(3)
    trainer = make_trainer(tmp_path, epochs=2)
    trainer.fit(module, *loaders(3))
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True, map_location="cpu")
    assert ckpt["hyper_parameters"] == {"conv_impl": "custom", "init": "keras", "dropout": 0.0}
    best = ckpt["state_dict"]["val_acc_best.max_value"]
    assert float(best) == pytest.approx(float(module.val_acc_best.compute()))
    fresh = make_module(3)
    fresh.load_state_dict(ckpt["state_dict"])
    x = torch.rand(5, 1, 4, 4)
    torch.testing.assert_close(fresh(x), module(x))


def test_example_input_and_predict_probabilities():
    module = make_module(3)
    assert module.example_input_array.shape == (1, 1, 4, 4)
    probs = module.predict_step(torch.rand(2, 1, 4, 4), 0)
    assert probs.shape == (2, 3)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


class StepOutputs(L.Callback):
    """Keeps what validation_step and test_step returned, batch by batch."""

    def __init__(self) -> None:
        self.outputs: dict[str, list] = {"val": [], "test": []}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:  # the sanity check runs the initial weights
            self.outputs["val"].append((outputs, batch))

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.outputs["test"].append((outputs, batch))


@pytest.mark.parametrize("stage", ["val", "test"])
def test_evaluation_steps_return_the_logits_and_targets_they_computed(tmp_path, stage):
    """Callbacks (the TensorBoard pictures) reuse these instead of running the network a second time."""
    module = make_module(3)
    keeper = StepOutputs()
    trainer = make_trainer(tmp_path, epochs=1, callbacks=[keeper])
    train, val = loaders(3)
    trainer.fit(module, train, val) if stage == "val" else trainer.test(module, val, verbose=False)
    assert len(keeper.outputs[stage]) == len(val)
    for out, (x, y) in keeper.outputs[stage]:
        assert set(out) == {"loss", "logits", "targets"} and not out["logits"].requires_grad
        with torch.inference_mode():  # the test batches are inference tensors
            torch.testing.assert_close(out["logits"], module(x))  # the step's own forward, same weights
        assert torch.equal(out["targets"], y)
        torch.testing.assert_close(out["loss"], nn.functional.cross_entropy(out["logits"], y))


class TrainStepRecorder(L.Callback):
    """Per epoch: each training step's loss, batch size and correct predictions (the logits the step computed)."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, int, int]] = []
        self.epochs: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        x, y = batch
        with torch.no_grad():  # the weights the step will use: its logits' arg-max
            self._correct = int((pl_module(x).argmax(1) == y).sum())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append((float(outputs["loss"]), batch[1].shape[0], self._correct))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.steps = []

    def on_fit_end(self, trainer, pl_module) -> None:
        self.epochs.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})


def test_train_loss_and_accuracy_are_batch_weighted_means_of_the_steps(tmp_path):
    """Logged once per epoch, train/loss is sum(loss * n) / sum(n) and train/acc sum(correct) / sum(n) of the
    epoch's steps; uneven batches (16, 16, 8) make an unweighted mean differ."""
    L.seed_everything(0)
    module = make_module(3)
    recorder = TrainStepRecorder()
    train, val = loaders(3, n=40)
    make_trainer(tmp_path, epochs=2, callbacks=[recorder]).fit(module, train, val)
    losses, sizes, correct = zip(*recorder.steps)
    assert sizes == (16, 16, 8)
    logged = recorder.epochs[-1]
    assert logged["train/loss"] == pytest.approx(sum(l * n for l, n in zip(losses, sizes)) / 40, rel=1e-6)
    assert logged["train/loss"] != pytest.approx(sum(losses) / 3, rel=1e-6)
    assert logged["train/acc"] == pytest.approx(sum(correct) / 40)
