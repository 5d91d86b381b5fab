"""TensorBoardPictures: the pure picture functions, then a real tiny fit read back with EventAccumulator.

The fit uses a hand-made LightningModule (two torch convs) and data module, so it does not depend on the
runner; `conv_layers` also picks up `cnnexp.layers.Conv2D` when that package is present.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnexp.lit.callbacks.pictures import (
    confusion_counts,
    feature_maps_grid,
    filters_grid,
    normalize01,
    tile,
    upscale,
)

# ---- pure functions -------------------------------------------------------------------------------

# (input shape, kwargs, expected output shape)
TILE_CASES = [
    ((4, 1, 3, 3), {}, (1, 9, 9)),  # 2x2 grid: 2 * (3 + 1) + 1
    ((5, 3, 2, 4), {}, (3, 7, 16)),  # 3 columns, 2 rows
    ((6, 1, 5, 5), {"ncols": 6, "pad": 0}, (1, 5, 30)),
    ((1, 1, 8, 8), {"pad": 2}, (1, 12, 12)),
]


@pytest.mark.parametrize("shape,kwargs,expected", TILE_CASES)
def test_tile_shapes(shape, kwargs, expected):
    assert tuple(tile(torch.rand(shape), **kwargs).shape) == expected


def test_tile_places_each_image_row_major():
    images = torch.arange(4.0).view(4, 1, 1, 1)  # four 1x1 images with values 0..3
    grid = tile(images, ncols=2, pad=1, pad_value=-1.0)  # (1, 5, 5)
    assert grid[0, 1, 1] == 0 and grid[0, 1, 3] == 1 and grid[0, 3, 1] == 2 and grid[0, 3, 3] == 3
    assert grid[0, 0].eq(-1).all() and grid[0, :, 2].eq(-1).all()


@pytest.mark.parametrize("hw,min_size,expected", [((3, 3), 32, (33, 33)), ((8, 8), 48, (48, 48)), ((64, 32), 48, (64, 32))])
def test_upscale_integer_factor(hw, min_size, expected):
    x = torch.rand(2, 1, *hw)
    y = upscale(x, min_size)
    assert tuple(y.shape[-2:]) == expected
    f = expected[0] // hw[0]
    assert torch.equal(y[..., ::f, ::f], x)  # nearest neighbour: every f-th pixel is the original


def test_normalize01_per_image_and_constant():
    x = torch.stack([torch.linspace(-5, 7, 16).view(1, 4, 4), torch.full((1, 4, 4), 3.0)])  # (2, 1, 4, 4)
    y = normalize01(x)
    assert y[0].min() == 0 and y[0].max() == 1
    assert torch.allclose(y[1], torch.full((1, 4, 4), 0.5))


@pytest.mark.parametrize("c_in,channels", [(1, 1), (3, 3), (5, 1)])
def test_filters_grid_channels(c_in, channels):
    grid = filters_grid(torch.randn(8, c_in, 3, 3))  # 8 filters: 3 columns x 3 rows of 33-pixel tiles
    assert tuple(grid.shape) == (channels, 3 * 34 + 1, 3 * 34 + 1)
    assert 0.0 <= grid.min() and grid.max() <= 1.0


def test_feature_maps_grid_caps_channels():
    grid = feature_maps_grid(torch.randn(40, 8, 8), max_maps=9)  # 9 maps of 8x8 upscaled x6 -> 3x3 grid
    assert tuple(grid.shape) == (1, 3 * 49 + 1, 3 * 49 + 1)


def test_confusion_counts_matches_sklearn():
    from sklearn.metrics import confusion_matrix

    g = torch.Generator().manual_seed(0)
    preds, targets = torch.randint(0, 4, (50,), generator=g), torch.randint(0, 4, (50,), generator=g)
    expected = confusion_matrix(targets.numpy(), preds.numpy(), labels=range(4))
    assert confusion_counts(preds, targets, 4).tolist() == expected.tolist()


# ---- a real fit, read back from the event files ---------------------------------------------------

CLASS_NAMES = ["zero", "one", "two"]
N_CONV1, N_CONV2 = 4, 6


def _make_fit_parts():
    import lightning.pytorch as L
    from torch.utils.data import DataLoader, TensorDataset

    class TinyData(L.LightningDataModule):
        class_names = CLASS_NAMES
        num_classes = 3
        input_shape = (1, 8, 8)

        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.x = torch.rand(48, 1, 8, 8, generator=g) * 255  # (N, C, H, W) in 0..255
            self.y = torch.randint(0, 3, (48,), generator=g)

        def train_dataloader(self):
            return DataLoader(TensorDataset(self.x, self.y), batch_size=16)

        def val_dataloader(self):
            return DataLoader(TensorDataset(self.x, self.y), batch_size=16)

    class TinyNet(L.LightningModule):
        def __init__(self, return_logits: bool = False):
            super().__init__()
            self.return_logits = return_logits
            self.net = nn.Sequential(
                nn.Conv2d(1, N_CONV1, 3, padding=1), nn.ReLU(),  # (N, 4, 8, 8)
                nn.Conv2d(N_CONV1, N_CONV2, 3), nn.ReLU(),  # (N, 6, 6, 6)
                nn.Flatten(), nn.Linear(N_CONV2 * 36, 3),
            )
            self.forward_calls = 0

        def forward(self, x):
            self.forward_calls += 1
            return self.net(x / 255.0)

        def training_step(self, batch, _):
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def validation_step(self, batch, _):
            logits = self(batch[0])
            self.log("val/acc", (logits.argmax(1) == batch[1]).float().mean())
            return {"logits": logits} if self.return_logits else None

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return L, TinyData, TinyNet


def _fit(
    tmp_path, *, fast_dev_run=False, logger="tensorboard", return_logits=False, epochs=1, accelerator="cpu", **options
):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from cnnexp.lit.callbacks.tensorboard_pictures import TensorBoardPictures

    L, TinyData, TinyNet = _make_fit_parts()
    loggers = {"tensorboard": TensorBoardLogger(tmp_path, name="tb"), "csv": CSVLogger(tmp_path), "none": False}
    model = TinyNet(return_logits=return_logits)
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=loggers[logger],
        callbacks=[TensorBoardPictures(**{"histogram_every_n_steps": 2, "num_misclassified": 5, **options})],
        fast_dev_run=fast_dev_run,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator=accelerator,
        devices=1,
    )
    trainer.fit(model, datamodule=TinyData())
    return trainer, model


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One epoch (3 train and 3 validation batches) with a TensorBoard logger; returns (trainer, accumulator)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, model = _fit(tmp_path_factory.mktemp("pictures"))
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0, "histograms": 0})
    acc.Reload()
    return trainer, model, acc


# (tag, expected (height, width), or None where only the size's existence is checked)
IMAGE_CASES = [
    ("filters/net.0", (2 * 34 + 1, 2 * 34 + 1)),  # 4 filters 3x3 -> x11 -> 33px tiles on a 2x2 grid
    ("feature_maps/input", (48, 48)),  # 8x8 -> x6
    ("feature_maps/net.0", (2 * 49 + 1, 2 * 49 + 1)),  # 4 maps 8x8 -> x6 -> 48px on 2x2
    ("feature_maps/net.2", (2 * 49 + 1, 3 * 49 + 1)),  # 6 maps 6x6 -> x8 -> 48px on 3 columns x 2 rows
    ("val/confusion_matrix", None),
    ("val/misclassified", None),
]


@pytest.mark.parametrize("tag,hw", IMAGE_CASES)
def test_fit_writes_images(fitted, tag, hw):
    trainer, _, acc = fitted
    assert tag in acc.Tags()["images"], acc.Tags()["images"]
    events = acc.Images(tag)
    assert [e.step for e in events] == [trainer.global_step]  # one validation epoch
    if hw is not None:
        assert (events[0].height, events[0].width) == hw
    else:  # a rendered matplotlib figure: a real picture, not a placeholder
        assert events[0].height > 100 and events[0].width > 100


@pytest.mark.parametrize("kind", ["weights", "grads"])
@pytest.mark.parametrize("param,numel", [("net.0.weight", N_CONV1 * 9), ("net.2.bias", N_CONV2), ("net.5.weight", 3 * N_CONV2 * 36)])
def test_fit_writes_histograms(fitted, kind, param, numel):
    _, _, acc = fitted
    tag = f"{kind}/{param}"
    assert tag in acc.Tags()["histograms"]
    events = acc.Histograms(tag)
    assert [e.step for e in events] == [0, 2]  # 3 optimizer steps, every 2nd logged
    assert all(e.histogram_value.num == numel for e in events)


def test_fit_recomputes_predictions_only_when_the_step_returns_none(tmp_path, fitted):
    _, model_none, _ = fitted
    _, model_logits = _fit(tmp_path, return_logits=True)
    # 3 train + 3 val forwards; without returned logits: + 3 prediction passes + 1 feature-map pass
    assert model_logits.forward_calls == 3 + 3 + 1
    assert model_none.forward_calls == 3 + 3 + 3 + 1


def test_switched_off_pictures_are_not_drawn_and_cost_no_forward_pass(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    options = {"confusion_matrix": False, "num_misclassified": 0, "feature_maps": False, "histogram_every_n_steps": 0}
    trainer, model = _fit(tmp_path, **options)
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0})
    acc.Reload()
    assert acc.Tags()["images"] == ["filters/net.0"] and acc.Tags()["histograms"] == []
    assert model.forward_calls == 3 + 3  # train and validation steps only


@pytest.mark.parametrize("fast_dev_run,logger", [(True, "tensorboard"), (False, "csv"), (False, "none")])
def test_without_tensorboard_does_nothing(tmp_path, fast_dev_run, logger):
    trainer, _ = _fit(tmp_path, fast_dev_run=fast_dev_run, logger=logger)
    assert trainer.state.finished
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_cuda_writes_the_same_pictures(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, _ = _fit(tmp_path, accelerator="gpu")
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0, "histograms": 0})
    acc.Reload()
    assert {tag for tag, _ in IMAGE_CASES} <= set(acc.Tags()["images"])
    assert "grads/net.0.weight" in acc.Tags()["histograms"]
