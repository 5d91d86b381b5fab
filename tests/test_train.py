"""train(cfg) end to end on the CPU: the default digits run, the run folder, seeding, experiments, DDP on gloo."""

from __future__ import annotations

import math

import pytest
import yaml

from cnnexp.train import RESOLVED_CONFIG, train

FAST = ["model=tiny_cnn", "~callbacks.tensorboard_pictures", "~callbacks.rich_progress",
        "trainer.enable_progress_bar=false"]


def event_data(folder):
    """Scalars {tag: [values]} and the HParams plugin's metric names from a run's TensorBoard files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    metrics = []
    for content in acc.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("experiment"):
            metrics += [m.name.tag for m in data.experiment.metric_infos]
    return scalars, metrics, acc.Tags().get("graph", False)


def test_default_run_learns_digits_and_writes_its_run_folder(make_cfg, capsys):
    """The default config (lecture CNN on load_digits at 32x32), fewer epochs: a real accuracy bar and a complete
    run folder. Six of the default's epochs reach 0.93-0.96 on seeds 42 and 0-2 (docs/default_run.md), a broken
    resize, augmentation or schedule far less; the full run 0.98-0.99."""
    cfg = make_cfg("trainer.max_epochs=6", "~callbacks.tensorboard_pictures", "~callbacks.rich_progress",
                   "trainer.enable_progress_bar=false")
    metrics = train(cfg)
    assert metrics["test/acc"] >= 0.90, metrics
    assert metrics["val/acc_best"] >= metrics["val/acc"] - 1e-6
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "test/acc_top5"} <= set(metrics)

    run = cfg.paths.output_dir
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"test/acc={metrics['test/acc']:.4f}  run: ") and line.endswith("run")

    saved = yaml.safe_load(open(f"{run}/{RESOLVED_CONFIG}"))
    assert saved["model"]["net"]["input_shape"] == [1, 32, 32] and saved["model"]["net"]["num_classes"] == 10
    from pathlib import Path
    ckpts = sorted(p.name for p in Path(run, "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and any(name.startswith("epoch_") for name in ckpts)

    scalars, hparam_metrics, graph = event_data(f"{run}/tensorboard")
    for tag in ["train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/acc", "lr-Adam"]:
        assert tag in scalars, tag
    assert hparam_metrics[0] == "val/acc_best" and "hp_metric" not in scalars  # not Lightning's placeholder
    assert scalars["val/acc_best"][-1] == pytest.approx(metrics["val/acc_best"])
    assert min(scalars["val/acc_best"]) > 0.0  # only real epoch values (no fake (step 0, 0.0) point)
    assert max(scalars["val/acc"]) == pytest.approx(metrics["val/acc_best"])


def test_same_seed_gives_identical_metrics(make_cfg):
    runs = [train(make_cfg(*FAST, "trainer.max_epochs=2", "trainer.deterministic=true", "logger=csv", run=f"r{i}"))
            for i in range(2)]
    assert runs[0] == runs[1]
    other = train(make_cfg(*FAST, "trainer.max_epochs=2", "trainer.deterministic=true", "logger=csv", "seed=7",
                           run="r7"))
    assert other != runs[0]


@pytest.mark.parametrize("name", ["digits", "seed_flowers", "seed_flowers_aug", "mnist", "fashion_mnist", "cifar10",
                                  "shapes"])
def test_fast_dev_run_of_each_experiment(make_cfg, data_root, name):
    overrides = [f"+experiment={name}", "debug=fast_dev_run", "~callbacks.rich_progress",
                 "trainer.enable_progress_bar=false"]
    if name.startswith("seed_flowers"):
        overrides.append("data.batch_size=4")  # one batch of 180x180 RGB through the custom conv is the point
    metrics = train(make_cfg(*overrides, data_dir=data_root))
    assert "test/acc" in metrics and math.isfinite(metrics["train/loss"])  # fit and test both ran on its data


def test_test_false_and_train_false(make_cfg):
    metrics = train(make_cfg(*FAST, "trainer.max_epochs=1", "test=false", "logger=csv"))
    assert "val/acc" in metrics and "test/acc" not in metrics


@pytest.mark.slow
def test_ddp_sim_two_gloo_processes(make_cfg):
    cfg = make_cfg(*FAST, "trainer=ddp_sim", "trainer.max_epochs=2", "optimizer.lr=0.01",
                   "~callbacks.interrupt_checkpoint")
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.6  # 10 classes; 0.93 in one process, here each process sees half the batches
    from pathlib import Path
    assert Path(cfg.paths.output_dir, "checkpoints", "last.ckpt").is_file()


def test_resume_from_a_checkpoint_file(make_cfg):
    """ckpt_path=<file> resumes (weights_only loading through the run's checkpoint plugin) where training stopped."""
    first = make_cfg(*FAST, "trainer.max_epochs=1", "logger=csv", "test=false", run="first")
    train(first)
    last = f"{first.paths.output_dir}/checkpoints/last.ckpt"
    resumed = make_cfg(*FAST, "trainer.max_epochs=2", "logger=csv", f"ckpt_path={last}", run="second")
    metrics = train(resumed)
    import torch
    ckpt = torch.load(f"{resumed.paths.output_dir}/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 2 * torch.load(last, weights_only=True)["global_step"]
    assert "test/acc" in metrics


@pytest.mark.gpu
@pytest.mark.parametrize("conv_impl", ["custom", "torch"])
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed", "32-true"])
def test_gpu_trainer(make_cfg, data_root, conv_impl, precision):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    metrics = train(make_cfg("+experiment=seed_flowers", "trainer=gpu", f"trainer.precision={precision}",
                             f"model.conv_impl={conv_impl}", "debug=fast_dev_run", "trainer.accelerator=gpu",
                             "~callbacks.rich_progress", "trainer.enable_progress_bar=false", data_dir=data_root))
    assert math.isfinite(metrics["train/loss"])


def test_bf16_mixed_precision_on_the_cpu(make_cfg):
    """The lecture CNN with the custom conv trains under bf16-mixed autocast on the CPU (the CUDA-path dtype rule
    is pinned in tests/functional/test_geometry.py)."""
    metrics = train(make_cfg(*FAST[1:], "trainer.max_epochs=1", "trainer.precision=bf16-mixed", "logger=csv",
                             "+trainer.limit_train_batches=8", "+trainer.limit_val_batches=2", "test=false"))
    assert math.isfinite(metrics["train/loss"])


@pytest.mark.parametrize("conv_impl", ["torch", "custom"])
def test_model_graph_in_tensorboard(make_cfg, conv_impl):
    cfg = make_cfg(*FAST[1:], "trainer.max_epochs=1", f"model.conv_impl={conv_impl}", "test=false")  # lecture CNN
    train(cfg)
    _, _, graph = event_data(f"{cfg.paths.output_dir}/tensorboard")
    assert graph


def test_a_missing_data_set_is_found_before_the_model_is_built(make_cfg, tmp_path, caplog):
    from cnnexp.errors import DataError

    cfg = make_cfg("data=mnist", *FAST, data_dir=tmp_path / "empty")
    with caplog.at_level("INFO", logger="cnnexp.train"), pytest.raises(DataError, match="mnist is missing from"):
        train(cfg)
    assert any(r.getMessage().startswith("Data: ") for r in caplog.records)
    assert not any(r.getMessage().startswith("Model: ") for r in caplog.records)  # the model was never built


def test_run_json_tensorboard_text_and_hparams_record_the_provenance(make_cfg):
    """run.json: command, versions, machine, the seed a seed=null run drew, tags, status, metrics; the same in
    TensorBoard's Text tab; tags in the hparams; checkpoints with the permissions of the other run files."""
    import json
    import os
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg(*FAST, "trainer.max_epochs=1", "seed=null", "tags=[baseline,lr_sweep]")
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    info = json.loads((run / "run.json").read_text())
    assert (info["status"], info["exit_status"], info["tags"]) == ("success", 0, ["baseline", "lr_sweep"])
    assert isinstance(info["seed"], int) and info["metrics"]["test/acc"] == metrics["test/acc"]
    import lightning
    import torch
    assert torch.__version__.startswith(info["versions"]["torch"])
    assert info["versions"]["lightning"] == lightning.__version__
    assert info["machine"]["torch_threads"] >= 1 and info["machine"]["cpu"]
    assert info["start"] <= info["end"]

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    assert "provenance/text_summary" in acc.Tags()["tensors"]
    hparams = yaml.safe_load((run / "tensorboard" / "hparams.yaml").read_text())
    assert hparams["tags"] == "[baseline,lr_sweep]"  # one HParams cell (TensorBoard's hparams hold scalars only)

    mode = os.stat(run / "config_resolved.yaml").st_mode & 0o777
    assert all(os.stat(p).st_mode & 0o777 == mode for p in (run / "checkpoints").glob("*.ckpt"))
