"""TensorBoardPictures: the pure picture functions, then a real tiny fit read back with EventAccumulator.

The fit uses a hand-made LightningModule (two torch convs) and data module, so it does not depend on the
runner; `conv_layers` also picks up `cnnexp.layers.Conv2D` when that package is present.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnexp.lit.callbacks.figures import captioned_grid, confusion_matrix_image
from cnnexp.lit.callbacks.pictures import PAD_COLOUR, feature_maps_grid, filters_grid, grid, normalize01, upscale

# ---- pure functions -------------------------------------------------------------------------------

# (input shape, kwargs, expected output shape): make_grid's layout, near-square by default
GRID_CASES = [
    ((4, 1, 3, 3), {"padding": 1}, (3, 9, 9)),  # 2x2 grid: 2 * (3 + 1) + 1
    ((5, 3, 2, 4), {"padding": 1}, (3, 7, 16)),  # 3 columns, 2 rows
    ((6, 1, 5, 5), {"ncols": 6, "padding": 0}, (3, 5, 30)),
    ((1, 1, 8, 8), {"padding": 2}, (3, 12, 12)),
]


@pytest.mark.parametrize("shape,kwargs,expected", GRID_CASES)
def test_grid_shapes(shape, kwargs, expected):
    assert tuple(grid(torch.rand(shape), **kwargs).shape) == expected


def test_grid_places_each_image_row_major_with_coloured_separators():
    images = torch.tensor([0.0, 1.0, 0.25, 0.75]).view(4, 1, 1, 1)  # four 1x1 gray images, black and white included
    out = grid(images, ncols=2, padding=1)  # (3, 5, 5)
    assert out[:, 1, 1].eq(0).all() and out[:, 1, 3].eq(1).all() and out[:, 3, 1].eq(0.25).all()
    assert out[:, 3, 3].eq(0.75).all()
    colour = torch.tensor(PAD_COLOUR)
    for y, x in [(0, 0), (0, 2), (2, 1), (4, 4), (1, 2)]:  # border and separators: the colour, not a gray
        assert torch.equal(out[:, y, x], colour), (y, x)
    assert len(set(PAD_COLOUR)) == 3  # a colour is seen next to light and dark gray tiles alike


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


@pytest.mark.parametrize("c_in", [1, 3, 5])
def test_filters_grid_makes_each_kernel_a_readable_tile(c_in):
    grid_image = filters_grid(torch.randn(16, c_in, 3, 3))  # 16 filters: 4 x 4 tiles of 3 * 16 = 48 pixels
    assert tuple(grid_image.shape) == (3, 4 * 51 + 3, 4 * 51 + 3)
    assert 0.0 <= grid_image.min() and grid_image.max() <= 1.0
    tile = grid_image[:, 3:51, 3:51]  # the first kernel, each weight a 16x16 block
    assert torch.equal(tile, tile[:, ::16, ::16].repeat_interleave(16, 1).repeat_interleave(16, 2))


def test_feature_maps_grid_caps_channels():
    out = feature_maps_grid(torch.randn(40, 8, 8), max_maps=9)  # 9 maps of 8x8 upscaled x6 -> 3x3 grid
    assert tuple(out.shape) == (3, 3 * 50 + 2, 3 * 50 + 2)


def test_confusion_matrix_image_colours_cells_by_recall():
    counts = torch.tensor([[9, 1, 0], [0, 5, 5], [0, 0, 4]])  # rows true: recall 0.9, 0.5, 1.0
    image = confusion_matrix_image(counts, ["zero", "one", "two"])
    assert image.shape[0] == 3 and image.shape[1] > 100 and image.shape[2] > 100
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert (image < 0.5).any() and (image.mean(0) > 0.95).any()  # dark (recall 1.0) and white cells and text


def test_confusion_matrix_image_labels_columns_by_index_when_names_are_long():
    names = [f"class number {i}" for i in range(12)]
    image = confusion_matrix_image(torch.eye(12, dtype=torch.long) * 3, names)
    assert image.shape[2] < 1200  # the long names are not laid out one per column


def test_captioned_grid_puts_a_caption_under_each_image():
    images = torch.zeros(5, 1, 8, 8)  # black digits: any light pixel under them is caption background
    out = captioned_grid(images, [f"true: {i}\npred: {i + 1}" for i in range(5)])  # 8x8 -> x8 -> 64 px
    assert out.shape[0] == 3 and out.shape[2] == 3 * (64 + 3) + 3  # 3 columns
    first = out[:, 3:, 3:67]
    assert first[:, :64].eq(0).all()  # the image, upscaled
    caption = first[:, 64:]
    assert (caption.mean(0) > 0.9).any() and (caption.mean(0) < 0.3).any()  # white strip with dark text


# ---- a real fit, read back from the event files ---------------------------------------------------

CLASS_NAMES = ["zero", "one", "two"]
N_CONV1, N_CONV2 = 4, 6
EPOCHS, EVERY, BATCHES = 5, 3, 3  # pictures on epochs 0 and 3 (every 3rd) and 4 (the last); 3 batches an epoch


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
            self.y = torch.arange(48) % 3
            self.x = torch.rand(48, 1, 8, 8, generator=g) * 128  # (N, C, H, W) in 0..255
            self.x[torch.arange(48), 0, :, 2 * self.y] += 127  # class k: a bright column 2k
            self.y[::4] = (self.y[::4] + 1) % 3  # a quarter mislabelled: some validation images stay wrong

        def train_dataloader(self):
            return DataLoader(TensorDataset(self.x, self.y), batch_size=16)

        def val_dataloader(self):
            return DataLoader(TensorDataset(self.x, self.y), batch_size=16)

    class TinyNet(L.LightningModule):
        def __init__(self, return_logits: bool = True):
            super().__init__()
            self.return_logits = return_logits
            self.net = nn.Sequential(
                nn.Conv2d(1, N_CONV1, 3, padding=1), nn.ReLU(),  # (N, 4, 8, 8)
                nn.Conv2d(N_CONV1, N_CONV2, 3), nn.ReLU(),  # (N, 6, 6, 6)
                nn.Flatten(), nn.Linear(N_CONV2 * 36, 3),
            )
            self.forward_calls = 0
            self.val_inputs = []  # (first image, epoch) of each validation epoch's first batch

        def forward(self, x):
            self.forward_calls += 1
            return self.net(x / 255.0)

        def training_step(self, batch, _):
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def validation_step(self, batch, _):
            logits = self(batch[0])
            self.log("val/acc", (logits.argmax(1) == batch[1]).float().mean())
            return {"loss": nn.functional.cross_entropy(logits, batch[1]), "logits": logits} \
                if self.return_logits else None

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    return L, TinyData, TinyNet


def _fit(tmp_path, *, fast_dev_run=False, logger="tensorboard", return_logits=True, epochs=EPOCHS,
         accelerator="cpu", **options):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from cnnexp.lit.callbacks.tensorboard_pictures import TensorBoardPictures

    L, TinyData, TinyNet = _make_fit_parts()
    loggers = {"tensorboard": TensorBoardLogger(tmp_path, name="tb"), "csv": CSVLogger(tmp_path), "none": False}
    model = TinyNet(return_logits=return_logits)
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=loggers[logger],
        callbacks=[TensorBoardPictures(**{"every_n_epochs": EVERY, "num_misclassified": 5, **options})],
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


def _events(trainer):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Five epochs (3 train and 3 validation batches each) with a TensorBoard logger."""
    trainer, model = _fit(tmp_path_factory.mktemp("pictures"))
    return trainer, model, _events(trainer)


def _epoch_step(epoch: int) -> int:
    return (epoch + 1) * BATCHES  # the global step when validation epoch `epoch` ends


def _best_step(acc) -> int:
    """The step of the epoch with the first highest val/acc: the epoch ModelCheckpoint(mode=max) keeps."""
    values = [e.value for e in acc.Scalars("val/acc")]  # one per epoch
    assert len(values) == EPOCHS and len(set(values)) > 1  # the test can tell the epochs apart
    return _epoch_step(values.index(max(values)))


# (tag, expected (height, width), or None where only the size's existence is checked)
IMAGE_CASES = [
    ("filters/net.0", (2 * 51 + 3, 2 * 51 + 3)),  # 4 filters 3x3 -> x16 -> 48 px tiles on a 2x2 grid
    ("feature_maps/input", (48, 48)),  # 8x8 -> x6
    ("feature_maps/net.0", (2 * 50 + 2, 2 * 50 + 2)),  # 4 maps 8x8 -> x6 -> 48 px on 2x2
    ("feature_maps/net.2", (2 * 50 + 2, 3 * 50 + 2)),  # 6 maps 6x6 -> x8 -> 48 px on 3 columns x 2 rows
    ("val/confusion_matrix", None),
    ("val/misclassified", None),
]


@pytest.mark.parametrize("tag,hw", IMAGE_CASES)
def test_fit_draws_first_every_nth_and_last_epoch_and_the_best_once(fitted, tag, hw):
    trainer, _, acc = fitted
    assert tag in acc.Tags()["images"], acc.Tags()["images"]
    events = acc.Images(tag)
    assert [e.step for e in events] == [_epoch_step(0), _epoch_step(3), _epoch_step(4)]
    assert _epoch_step(4) == trainer.global_step
    best = acc.Images(f"best/{tag}")
    assert [e.step for e in best] == [_best_step(acc)]
    if hw is not None:
        assert {(e.height, e.width) for e in events + best} == {hw}
    else:  # a picture with text: a real picture, not a placeholder
        assert all(e.height > 100 and e.width > 100 for e in events + best)


def test_fit_never_runs_the_network_again(fitted):
    _, model, _ = fitted
    assert model.forward_calls == EPOCHS * (BATCHES + BATCHES)  # the train and validation steps only


def test_feature_maps_are_the_first_validation_image_caught_in_the_step(fitted, tmp_path):
    """The hooks catch the activations of the validation step's own forward pass: they must equal what the
    final weights give for the first validation image (the last validation epoch is drawn after the last step)."""
    import io

    import numpy as np
    from PIL import Image

    from cnnexp.lit.callbacks.pictures import feature_maps_grid

    trainer, model, acc = fitted
    x = trainer.datamodule.x[:1]
    with torch.no_grad():
        expected = feature_maps_grid(model.net[0](x / 255.0)[0])  # (3, H, W): the conv layer's output
    png = acc.Images("feature_maps/net.0")[-1].encoded_image_string
    drawn = torch.from_numpy(np.array(Image.open(io.BytesIO(png)).convert("RGB"))).permute(2, 0, 1) / 255.0
    torch.testing.assert_close(drawn, expected, atol=1 / 255, rtol=0)


@pytest.mark.parametrize("kind", ["weights", "grads"])
@pytest.mark.parametrize("param,numel", [("net.0.weight", N_CONV1 * 9), ("net.2.bias", N_CONV2), ("net.5.weight", 3 * N_CONV2 * 36)])
def test_fit_writes_histograms_with_the_pictures(fitted, kind, param, numel):
    _, _, acc = fitted
    tag = f"{kind}/{param}"
    assert tag in acc.Tags()["histograms"]
    events = acc.Histograms(tag)
    assert [e.step for e in events] == [_epoch_step(0), _epoch_step(3), _epoch_step(4)]
    assert all(e.histogram_value.num == numel for e in events)


def test_a_step_without_logits_gets_no_prediction_pictures_and_no_extra_pass(tmp_path):
    with pytest.warns(UserWarning, match="returned no logits"):
        trainer, model = _fit(tmp_path, return_logits=False, epochs=1)
    tags = _events(trainer).Tags()["images"]
    assert "filters/net.0" in tags and "feature_maps/net.0" in tags
    assert "val/confusion_matrix" not in tags and "val/misclassified" not in tags
    assert model.forward_calls == BATCHES + BATCHES


def test_switched_off_pictures_are_not_drawn(tmp_path):
    options = {"confusion_matrix": False, "num_misclassified": 0, "feature_maps": False, "histograms": False,
               "best": False}
    trainer, model = _fit(tmp_path, epochs=1, **options)
    acc = _events(trainer)
    assert acc.Tags()["images"] == ["filters/net.0"] and acc.Tags()["histograms"] == []
    assert model.forward_calls == BATCHES + BATCHES


@pytest.mark.parametrize("fast_dev_run,logger", [(True, "tensorboard"), (False, "csv"), (False, "none")])
def test_without_tensorboard_does_nothing(tmp_path, fast_dev_run, logger):
    trainer, _ = _fit(tmp_path, fast_dev_run=fast_dev_run, logger=logger, epochs=1)
    assert trainer.state.finished
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_cuda_writes_the_same_pictures(tmp_path):
    trainer, _ = _fit(tmp_path, accelerator="gpu", epochs=1)
    acc = _events(trainer)
    assert {tag for tag, _ in IMAGE_CASES} <= set(acc.Tags()["images"])
    assert "grads/net.0.weight" in acc.Tags()["histograms"]


def test_with_the_runner_s_classifier_and_conv_layers(make_cfg, tmp_path):
    """ImageClassifier (logits from its validation_step) and cnnexp's own Conv2D (hooked for the feature maps)
    on the default data at 32x32: every picture, and the network runs only for the steps themselves."""
    import lightning.pytorch as L
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import TensorBoardLogger

    from cnnexp.lit.callbacks.tensorboard_pictures import TensorBoardPictures
    from cnnexp.train import fill_data_shape

    cfg = make_cfg("model=tiny_cnn")
    datamodule = instantiate(cfg.data)
    fill_data_shape(cfg, datamodule)
    model = instantiate(cfg.model)
    calls = []
    model.net.register_forward_pre_hook(lambda *_: calls.append(1))
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=2, num_sanity_val_steps=0,
                        logger=TensorBoardLogger(tmp_path, name="tb"), callbacks=[TensorBoardPictures()],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1)
    trainer.fit(model, datamodule=datamodule)
    assert len(calls) == 2 * (3 + 2)
    tags = set(_events(trainer).Tags()["images"])
    conv = "net.layers.1"  # tiny_cnn: Rescaling, Conv2D, ...
    for tag in [f"filters/{conv}", "feature_maps/input", f"feature_maps/{conv}", "val/confusion_matrix",
                "val/misclassified"]:
        assert tag in tags and f"best/{tag}" in tags, (tag, sorted(tags))
