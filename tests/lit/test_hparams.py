"""The concise HParams of a run (cnnexp.lit.hparams) and how cnnexp's TensorBoardLogger writes them.

The logger's event files are read back with TensorBoard's own EventAccumulator: what the HParams tab reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from cnnexp.lit.hparams import MAX_HPARAMS, run_hparams

CFG = OmegaConf.create({
    "seed": 42, "tags": ["dev", "lr"],
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.001},
    "data": {"_target_": "cnnexp.data.digits.DigitsDataModule", "batch_size": 32},
    "model": {"conv_impl": "custom", "dropout": 0.2, "net": {"layers": [
        {"_target_": "cnnexp.layers.Rescaling"}, {"_target_": "cnnexp.layers.Conv2D", "filters": 32},
        {"_target_": "cnnexp.layers.Conv2D", "filters": 64}, {"_target_": "cnnexp.layers.Dense", "units": 10}]}},
    "trainer": {"max_epochs": 80},
    "scheduler": {},
})
MODEL = torch.nn.Linear(3, 2)  # 8 parameters


def test_swept_keys_first_then_other_overrides_then_the_curated_set():
    overrides = ["model=tiny_cnn", "optimizer.lr=0.03", "+hparams_search=x", "hydra.verbose=true"]
    hparams, differs = run_hparams(CFG, MODEL, overrides, {"model": "tiny_cnn", "data": "digits"}, ["optimizer.lr"])
    assert list(hparams)[:3] == ["optimizer.lr", "model", "hparams_search"]
    assert differs == ["optimizer.lr"]
    assert hparams["optimizer.lr"] == 0.001  # the composed value (the override's text only for config groups)
    assert hparams["model"] == "tiny_cnn" and hparams["hparams_search"] == "x"
    assert hparams["filters"] == "32,64" and hparams["params"] == 8 and hparams["tags"] == "dev,lr"
    assert hparams["optimizer"] == "Adam" and hparams["data"] == "digits"  # a group's option, else its class
    assert {"data.batch_size": 32, "model.conv_impl": "custom", "model.dropout": 0.2, "trainer.max_epochs": 80,
            "seed": 42}.items() <= hparams.items()
    assert "hydra.verbose" not in hparams and "scheduler" not in hparams  # {} has no class and no choice here
    assert all(isinstance(v, (bool, int, float, str)) for v in hparams.values())


def test_a_single_run_marks_all_its_overrides_and_the_count_is_capped():
    overrides = [f"+extra.k{i}={i}" for i in range(40)]
    hparams, differs = run_hparams(CFG, MODEL, overrides, {}, [])
    assert len(hparams) == MAX_HPARAMS and differs == list(hparams)  # none swept: every override differs
    assert len(set(hparams)) == len(hparams)


def test_keys_are_never_duplicated():
    hparams, _ = run_hparams(CFG, MODEL, ["optimizer.lr=0.1", "seed=1", "optimizer.lr=0.2"], {}, [])
    assert list(hparams).count("optimizer.lr") == 1 and list(hparams).count("seed") == 1


def hparams_plugin_data(log_dir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    data, scalars = {}, {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        try:
            contents = acc.PluginTagToContent("hparams")
        except KeyError:  # this event file holds no hparams summary
            contents = {}
        for tag, content in contents.items():
            data.setdefault(tag, plugin_data_pb2.HParamsPluginData.FromString(content))  # TensorBoard keeps the first
    return {"plugin": data, "scalars": scalars}


@pytest.mark.parametrize("status,expected", [("success", "STATUS_SUCCESS"), ("failed", "STATUS_FAILURE")])
def test_tensorboard_logger_writes_true_values_only(tmp_path, status, expected):
    from tensorboard.plugins.hparams import api_pb2

    from cnnexp.lit.tensorboard_logger import TensorBoardLogger

    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tb", version="")
    hparams, differs = run_hparams(CFG, MODEL, ["optimizer.lr=0.03"], {}, ["optimizer.lr"])
    logger.log_hyperparams(hparams, differs=differs)
    if status == "success":
        logger.log_metrics({"val/acc_best": 0.67, "val/acc": 0.67}, step=9)
        logger.log_metrics({"val/acc_best": 0.8, "val/acc": 0.8}, step=19)
    logger.finalize(status)
    logger.finalize("success")  # Lightning finalizes again after test(): the first status stays
    read = hparams_plugin_data(tmp_path / "tb")
    plugin, scalars = read["plugin"], read["scalars"]
    experiment = plugin["_hparams_/experiment"].experiment
    assert [m.name.tag for m in experiment.metric_infos][0] == "val/acc_best"
    assert [h.name for h in experiment.hparam_infos if h.differs] == ["optimizer.lr"]
    assert plugin["_hparams_/session_start_info"].session_start_info.hparams["optimizer.lr"].number_value == 0.001
    assert api_pb2.Status.Name(plugin["_hparams_/session_end_info"].session_end_info.status) == expected
    if status == "success":  # only the real points: no (0, 0.0) placeholder
        assert scalars["val/acc_best"] == [(9, pytest.approx(0.67)), (19, pytest.approx(0.8))]
    else:
        assert "val/acc_best" not in scalars and "hp_metric" not in scalars
    assert (tmp_path / "tb" / "hparams.yaml").is_file()


def test_custom_scalars_layout_pairs_train_and_val(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    from cnnexp.lit.tensorboard_logger import TensorBoardLogger

    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tb", version="")
    logger.log_hyperparams({"seed": 1})
    logger.finalize("success")
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    layout = layout_pb2.Layout.FromString(acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert sorted(charts.values()) == [[r"^train/acc$", r"^val/acc$"], [r"^train/loss$", r"^val/loss$"]]
    assert not any(cat.closed for cat in layout.category)  # expanded when the tab opens
