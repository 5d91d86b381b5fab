"""cnnexp.rerun without training: which overrides a rerun uses, and what it refuses (the end-to-end rerun is in
test_cli_end_to_end.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from cnnexp.errors import ConfigError
from cnnexp.rerun import config_differences, merge_overrides, plan, side_by_side
from cnnexp.trusted_config import UntrustedConfigError

from .compose import compose


def saved_run(folder: Path, overrides: list[str], seed_used: int | None = None) -> Path:
    """A run folder as `python -m cnnexp <overrides>` leaves it (.hydra/, config_resolved.yaml, run.json)."""
    (folder / ".hydra").mkdir(parents=True)
    safe = [o for o in overrides if "_target_" not in o and "logging" not in o]
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(compose(safe)))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / "config_resolved.yaml").write_text("{}\n")
    (folder / "run.json").write_text(json.dumps({"seed": seed_used, "metrics": {"test/acc": 0.5}}))
    return folder


def test_new_overrides_replace_old_ones_and_folder_keys_are_dropped():
    old = ["model=tiny_cnn", "optimizer.lr=0.01", "hydra.run.dir=outputs/runs/x", "+trainer.limit_train_batches=3"]
    assert merge_overrides(old, ["optimizer.lr=0.1", "tags=[b]"]) == [
        "model=tiny_cnn", "+trainer.limit_train_batches=3", "optimizer.lr=0.1", "tags=[b]"]


def test_plan_reuses_the_overrides_and_the_seed_a_null_seed_drew(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = saved_run(tmp_path / "outputs" / "runs" / "old", ["model=tiny_cnn", "seed=null"], seed_used=1234)
    overrides, new_dir = plan(run, ["trainer.max_epochs=2"])
    assert overrides[:2] == ["model=tiny_cnn", "seed=null"] and "trainer.max_epochs=2" in overrides
    assert "seed=1234" in overrides and overrides[-1] == f"hydra.run.dir={new_dir}"
    assert new_dir.parent == Path("outputs/runs") and new_dir.name != "old" and not new_dir.exists()


@pytest.mark.parametrize("payload", ["++data._target_=builtins.open", "++data._target_=torch.load"])
def test_overrides_that_name_code_to_run_are_refused(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    run = saved_run(tmp_path / "outputs" / "runs" / "old", ["model=tiny_cnn", payload])
    with pytest.raises(UntrustedConfigError, match="data._target_="):
        plan(run, [])
    assert [p.name for p in (tmp_path / "outputs" / "runs").iterdir()] == ["old"]  # no new run folder


def test_logging_overrides_and_folders_of_other_runs_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = saved_run(tmp_path / "r1", ["hydra.job_logging.root.level=DEBUG"])
    with pytest.raises(ConfigError, match="reconfigure logging"):
        plan(run, [])
    other = saved_run(tmp_path / "r2", [])
    for override in (f"hydra.run.dir={other}", f"paths.output_dir={other}"):
        with pytest.raises(ConfigError, match="a rerun never writes into another run's folder"):
            plan(other, [override])
    with pytest.raises(ConfigError, match="is not a run folder"):
        plan(tmp_path, [])


def test_a_changed_default_is_reported_but_a_new_override_is_not():
    saved = compose(["model=tiny_cnn"])
    assert config_differences(compose(["model=tiny_cnn"]), saved, []) == []
    assert config_differences(compose(["model=tiny_cnn", "optimizer.lr=0.5"]), saved, ["optimizer.lr=0.5"]) == []
    assert config_differences(compose(["model=tiny_cnn", "optimizer.lr=0.5"]), saved, []) == ["optimizer.lr"]


def test_side_by_side_marks_equal_and_different_metrics():
    table = side_by_side({"test/acc": 0.9, "val/acc": 0.8}, {"test/acc": 0.9, "val/acc": 0.7})
    lines = table.splitlines()
    assert lines[1].startswith("test/acc") and lines[1].endswith("same")
    assert lines[2].startswith("val/acc") and "diff +1.00e-01" in lines[2]
