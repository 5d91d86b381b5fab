"""Every config group option and every experiment composes, and what it describes can be built."""

from __future__ import annotations

from importlib.resources import files

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cnnexp.train import fill_data_shape, instantiate_dict

CONF = files("cnnexp.conf")


def options(group: str) -> list[str]:
    """The option names of a config group, read from the package's conf folder."""
    return sorted(p.name[:-5] for p in CONF.joinpath(group).iterdir() if p.name.endswith(".yaml"))


EXPERIMENTS = options("experiment")
CPU_TRAINERS = ["default", "cpu", "ddp_sim"]


def test_every_group_and_experiment_is_present():
    for group, expected in {
        "optimizer": {"adam", "sgd"}, "scheduler": {"none", "cosine", "step"},
        "trainer": {"default", "cpu", "gpu", "ddp", "ddp_sim"}, "logger": {"tensorboard", "csv"},
        "callbacks": {"default", "none", "model_checkpoint", "early_stopping", "lr_monitor", "rich_progress"},
        "debug": {"fast_dev_run", "overfit", "limit", "profiler"},
        "experiment": {"digits", "seed_flowers", "seed_flowers_aug", "mnist", "fashion_mnist", "cifar10", "shapes"},
    }.items():
        assert expected <= set(options(group)), group


def test_primary_config_defaults(make_cfg):
    cfg = make_cfg()
    assert cfg.seed == 42 and cfg.train and cfg.test and cfg.ckpt_path is None and cfg.resume is False
    assert cfg.optimized_metric == "val/acc_best"
    assert cfg.data._target_.endswith("DigitsDataModule")
    assert cfg.model.net._target_ == "cnnexp.models.KerasSequential"
    # Keras's Adam defaults
    assert (cfg.optimizer.lr, list(cfg.optimizer.betas), cfg.optimizer.eps) == (1e-3, [0.9, 0.999], 1e-7)
    assert cfg.callbacks.model_checkpoint.dirpath.endswith("/run/checkpoints")
    assert cfg.logger.tensorboard.save_dir.endswith("/run") and cfg.logger.tensorboard.name == "tensorboard"
    assert cfg.logger.tensorboard.default_hp_metric is False


@pytest.mark.parametrize("name", options("optimizer"))
def test_optimizer_options_build(make_cfg, name):
    cfg = make_cfg(f"optimizer={name}")
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = instantiate(cfg.optimizer)(params=[param])
    assert isinstance(optimizer, torch.optim.Optimizer) and optimizer.param_groups[0]["lr"] == cfg.optimizer.lr


@pytest.mark.parametrize("name", options("scheduler"))
def test_scheduler_options_build(make_cfg, name):
    cfg = make_cfg(f"scheduler={name}")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    if name == "none":
        assert not cfg.scheduler  # ImageClassifier treats the empty node as "no scheduler"
        return
    scheduler = instantiate(cfg.scheduler)(optimizer=optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_options(make_cfg, name):
    cfg = make_cfg(f"trainer={name}")
    assert cfg.trainer.plugins[0]._target_ == "cnnexp.lit.atomic_checkpoint_io.AtomicCheckpointIO"
    expected = {"gpu": ("gpu", "16-mixed"), "ddp": ("gpu", "32-true"), "ddp_sim": ("cpu", "32-true")}
    if name in expected:
        assert (cfg.trainer.accelerator, cfg.trainer.precision) == expected[name]
    if name == "ddp":
        assert cfg.trainer.strategy == "ddp" and "num_nodes" in cfg.trainer
    if name == "ddp_sim":
        assert cfg.trainer.devices == 2 and cfg.trainer.strategy.process_group_backend == "gloo"
    if name in CPU_TRAINERS:  # gpu/ddp need CUDA to build; they are composed only
        trainer = instantiate(cfg.trainer)
        assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("group, name", [("logger", n) for n in options("logger")]
                         + [("callbacks", n) for n in options("callbacks")])
def test_logger_and_callback_options_build(make_cfg, group, name):
    cfg = make_cfg(f"{group}={name}")
    built = instantiate_dict(cfg.get(group))
    assert len(built) == len([v for v in (cfg.get(group) or {}).values() if v is not None])


def test_default_callbacks_include_every_helper(make_cfg):
    names = set(make_cfg().callbacks)
    assert {"model_checkpoint", "early_stopping", "lr_monitor", "rich_progress", "tensorboard_pictures",
            "nan_guard", "interrupt_checkpoint"} <= names


@pytest.mark.parametrize("name", options("debug"))
def test_debug_options_build_a_trainer(make_cfg, name):
    cfg = make_cfg(f"debug={name}")
    assert cfg.task_name == "debug"
    instantiate(cfg.trainer)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiments_build_data_and_model(make_cfg, data_root, name):
    cfg = make_cfg(f"+experiment={name}", data_dir=data_root)
    assert cfg.task_name == name
    datamodule = instantiate(cfg.data)
    fill_data_shape(cfg, datamodule)
    model = instantiate(cfg.model)
    c, h, w = datamodule.input_shape
    logits = model(torch.rand(2, c, h, w) * 255)  # (2, K)
    assert logits.shape == (2, datamodule.num_classes)
    assert list(cfg.model.net.input_shape) == [c, h, w]


@pytest.mark.parametrize("name, expected", [
    ("seed_flowers", {"data.image_size": [180, 180], "data.batch_size": 32, "data.validation_split": 0.2,
                      "data.seed": 123, "optimizer.lr": 1e-3, "trainer.max_epochs": 10, "model.dropout": 0.0,
                      "data.augment": None, "scheduler": {}}),
    ("seed_flowers_aug", {"data.image_size": [180, 180], "data.batch_size": 32, "data.seed": 123,
                          "trainer.max_epochs": 15, "model.dropout": 0.2, "data.augment": "flowers"}),
    ("mnist", {"data.name": "mnist", "data.download": False}),
    ("fashion_mnist", {"data.name": "fashion_mnist"}),
    ("cifar10", {"data.name": "cifar10"}),
])
def test_experiment_recipes(make_cfg, name, expected):
    cfg = make_cfg(f"+experiment={name}")
    for key, value in expected.items():
        got = OmegaConf.select(cfg, key)
        got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
        assert got == value, key
