"""Configs read from disk instantiate only allowlisted targets: crafted payloads run no code and create no file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from cnnexp.evaluate import main as evaluate_main
from cnnexp.trusted_config import UntrustedConfigError, check_targets, instantiate_trusted, is_allowed, target_problems

from .compose import compose


class Payload:
    """Unpickling this creates `marker` (what a malicious pickle would do instead: run anything)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def run_folder(tmp_path: Path, data: dict) -> Path:
    """A run folder whose config_resolved.yaml has the crafted `data` node, and a checkpoint file."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}}, run / "checkpoints" / "last.ckpt")
    (run / "config_resolved.yaml").write_text(yaml.safe_dump({"seed": 1, "data": data, "model": {}, "trainer": {}}))
    return run


def test_torch_load_payload_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = tmp_path / "payload.pt"
    torch.save(Payload(str(marker)), payload)
    run = run_folder(tmp_path, {"_target_": "torch.load", "f": str(payload), "weights_only": False})
    with pytest.raises(UntrustedConfigError, match=r"data\._target_='torch\.load'") as info:
        evaluate_main([f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])
    assert str(run / "config_resolved.yaml") in str(info.value) and "Fix:" in str(info.value)
    assert not marker.exists()
    # control: the payload does run when unpickled (so the assertion above can fail)
    torch.load(payload, weights_only=False)
    assert marker.exists()


def test_builtins_open_payload_is_refused_and_creates_no_file(tmp_path):
    created = tmp_path / "created.txt"
    run = run_folder(tmp_path, {"_target_": "builtins.open", "file": str(created), "mode": "w"})
    with pytest.raises(UntrustedConfigError, match=r"builtins\.open"):
        evaluate_main([f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])
    assert not created.exists()


def test_a_target_hidden_behind_an_interpolation_is_refused(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"x": "builtins.open", "data": {"_target_": "${x}", "file": str(tmp_path / "f")}})
    with pytest.raises(UntrustedConfigError, match="data._target_='builtins.open'"):
        instantiate_trusted(cfg.data, source="test")
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("target", [
    "cnnexp.layers.Conv2D", "cnnexp.models.KerasSequential", "cnnexp.lit.ImageClassifier",
    "cnnexp.data.digits.DigitsDataModule", "cnnexp.lit.callbacks.nan_guard.NanGuard",
    "cnnexp.lit.atomic_checkpoint_io.AtomicCheckpointIO", "torch.optim.Adam",
    "torch.optim.lr_scheduler.CosineAnnealingLR", "lightning.pytorch.Trainer",
    "lightning.pytorch.loggers.TensorBoardLogger",
])
def test_cnnexp_torch_optim_and_lightning_classes_are_allowed(target):
    assert is_allowed(target)


@pytest.mark.parametrize("target", [
    "torch.load", "builtins.open", "os.system", "subprocess.run", "cnnexp.atomic_write.atomic_torch_save",
    "cnnexp.checkpoints.load_checkpoint", "cnnexp.data.safe_pickle", "torch.optim.Optimizer.zero_grad",
    "lightning.pytorch.loggers.WandbLogger", "cnnexp.layers.nope", None, 3,
])
def test_anything_else_is_refused(target):
    assert not is_allowed(target)


@pytest.mark.parametrize("overrides", [[], ["+experiment=seed_flowers_aug"], ["trainer=ddp"], ["logger=csv"],
                                       ["data=mnist"], ["optimizer=sgd", "scheduler=step"]])
def test_every_shipped_config_passes_the_allowlist(overrides):
    assert target_problems(compose(overrides)) == []


def test_the_message_names_every_refused_key():
    with pytest.raises(UntrustedConfigError) as info:
        check_targets({"a": {"_target_": "os.system"}, "b": [{"_target_": "torch.load"}]}, source="x.yaml")
    assert "a._target_='os.system'" in str(info.value) and "b.0._target_='torch.load'" in str(info.value)
