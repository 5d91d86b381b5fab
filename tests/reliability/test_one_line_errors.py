"""Every user error is one `error: ... Fix: ...` line and exit status 2 (issue 11, item 4).

Most cases are checked in-process (the function that finds the problem, and the message the entry point prints);
a few `python -m cnnexp` subprocesses pin the whole path: no Hydra "Error executing job" line, no traceback, no
run folder, and for config errors, lightning never imported.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cnnexp.atomic_write import atomic_torch_save
from cnnexp.checkpoints import resolve_ckpt_path
from cnnexp.cli import user_error_message
from cnnexp.config_checks import argument_problems, check_arguments
from cnnexp.early_checks import check_run_dir
from cnnexp.errors import ConfigError
from cnnexp.run_folders import discard_unstarted_run_dir

from .compose import compose

REPLACE_DROPOUT = "model.net.layers.7={_target_:cnnexp.layers.MaxPool2D}"  # keras_cnn_dropout's Dropout(rate)


def cnnexp(cwd: Path, *args: str, importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "cnnexp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def error_lines(stderr: str) -> list[str]:
    """stderr without `-X importtime`'s lines."""
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


# -- unknown arguments, found from the constructors' signatures -------------------------------------------------
@pytest.mark.parametrize(("override", "expected"), [
    ("+optimizer.lrr=1", "optimizer: Adam has no argument 'lrr'"),
    ("+model.net.layers.1.foo=1", "model.net.layers.1: Conv2D has no argument 'foo'"),
    (REPLACE_DROPOUT, "model.net.layers.7: MaxPool2D has no argument 'rate'"),
    ("+scheduler.gama=0.5", "scheduler: CosineAnnealingLR has no argument 'gama'"),
])
def test_unknown_arguments_are_named_with_a_fix(override, expected):
    (problem,) = argument_problems(compose([override]))
    assert problem.startswith(expected) and "Fix: remove it (~" in problem


def test_known_arguments_pass_and_the_suggested_fix_works():
    assert argument_problems(compose([])) == []
    assert argument_problems(compose(["optimizer=sgd", "scheduler=step", "model=tiny_cnn"])) == []
    check_arguments(compose([REPLACE_DROPOUT, "~model.net.layers.7.rate"]))  # the message's Fix, applied


# -- the run folder --------------------------------------------------------------------------------------------
def fake_run(folder: Path, overrides: list[str]) -> Path:
    """A run folder as training leaves it: .hydra/config.yaml of `overrides`, config_resolved.yaml, last.ckpt."""
    from omegaconf import OmegaConf

    (folder / ".hydra").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    cfg = compose(overrides)
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / "config_resolved.yaml").write_text("{}\n")
    torch.save({"state_dict": {}}, folder / "checkpoints" / "last.ckpt")
    return folder


def test_another_runs_folder_and_unwritable_folders_are_refused(tmp_path):
    run = fake_run(tmp_path / "runs" / "old", [])
    with pytest.raises(ConfigError, match="is the folder of another run.*Fix: .*python -m cnnexp.rerun"):
        check_run_dir(run)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigError, match=r"cannot create the run folder .*a_file/x \(Not a directory\)\. Fix:"):
        check_run_dir(tmp_path / "a_file" / "x")
    check_run_dir(tmp_path / "new" / "run")  # a new folder is fine (and created)
    assert (tmp_path / "new" / "run").is_dir()


def test_a_refused_run_leaves_no_folder_but_a_started_one_stays(tmp_path):
    unstarted = tmp_path / "u"
    (unstarted / ".hydra").mkdir(parents=True)
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "train.log"):
        (unstarted / name).write_text("x")
    assert discard_unstarted_run_dir(unstarted) and not unstarted.exists()
    started = fake_run(tmp_path / "s", [])
    assert not discard_unstarted_run_dir(started) and (started / "checkpoints" / "last.ckpt").is_file()


# -- resuming with another model or optimizer --------------------------------------------------------------------
def with_paths(cfg, log_dir: Path):
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.paths = {"log_dir": str(log_dir), "output_dir": str(log_dir / "runs" / "new")}
    return cfg


def test_resume_with_another_model_is_refused_naming_the_difference(tmp_path):
    run = fake_run(tmp_path / "runs" / "tiny", ["model=tiny_cnn"])
    cfg = with_paths(compose(["model=keras_cnn", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]), tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve_ckpt_path(cfg)
    message = str(info.value)
    assert "cannot resume from" in message and "model.net.layers: [Rescaling, Conv2D(filters=8)" in message
    assert "Fix: resume with the same model" in message


def test_resume_true_picks_only_a_run_with_the_same_optimizer(tmp_path):
    adam = fake_run(tmp_path / "runs" / "adam", ["model=tiny_cnn"])
    with pytest.raises(ConfigError, match="resume=true: no earlier run .* same task, model, optimizer and data"):
        resolve_ckpt_path(with_paths(compose(["model=tiny_cnn", "optimizer=sgd", "resume=true"]), tmp_path))
    sgd = fake_run(tmp_path / "runs" / "sgd", ["model=tiny_cnn", "optimizer=sgd"])
    os.utime(adam / "checkpoints" / "last.ckpt")  # the Adam run is the newest: it must still not be picked
    got = resolve_ckpt_path(with_paths(compose(["model=tiny_cnn", "optimizer=sgd", "resume=true"]), tmp_path))
    assert Path(got) == sgd / "checkpoints" / "last.ckpt"


def test_a_loose_adam_checkpoint_cannot_resume_sgd(tmp_path):
    """A checkpoint outside a run folder (no saved config): its optimizer state tells Adam from SGD."""
    from cnnexp.checkpoints import check_resumable

    params = [torch.zeros(2, requires_grad=True)]
    state = {"optimizer_states": [torch.optim.Adam(params).state_dict()], "state_dict": {}}
    torch.save(state, tmp_path / "adam.ckpt")
    with pytest.raises(ConfigError, match="its optimizer state has no 'dampening', 'momentum', 'nesterov'.*Fix:"):
        check_resumable(compose(["optimizer=sgd"]), tmp_path / "adam.ckpt")
    check_resumable(compose([]), tmp_path / "adam.ckpt")  # the same optimizer resumes


def test_a_checkpoint_that_does_not_fit_becomes_a_config_error():
    """Real mismatches (a state_dict of another shape, an Adam state loaded into SGD) while restoring become one
    line; the same error types raised elsewhere during training stay bugs."""
    from cnnexp.checkpoints import resume_errors

    small, big = torch.nn.Linear(2, 2), torch.nn.Linear(3, 2)
    with pytest.raises(ConfigError, match="does not fit this model or optimizer .*size mismatch.*Fix:"):
        with resume_errors("x.ckpt"):
            big.load_state_dict(small.state_dict())
    adam = torch.optim.Adam(small.parameters())
    small(torch.ones(1, 2)).sum().backward()
    adam.step()
    sgd = torch.optim.SGD(small.parameters(), lr=0.1, momentum=0.9)
    sgd.load_state_dict(adam.state_dict())  # torch accepts it; the KeyError comes at the first step
    with pytest.raises(KeyError):  # raised in step(), not while restoring: not called a resume error
        with resume_errors("x.ckpt"):
            sgd.step()
    with pytest.raises(RuntimeError, match="a bug"):
        with resume_errors("x.ckpt"):
            raise RuntimeError("a bug")


# -- a full disk, an unwritable folder ---------------------------------------------------------------------------
def test_a_full_disk_is_one_line_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"w": torch.ones(3)}, path)
    before = path.read_bytes()

    def full_disk(prefix: str = "", suffix: str = "", dir: str | None = None):  # noqa: A002 - mkstemp's names
        return os.open("/dev/full", os.O_WRONLY), str(Path(dir) / f"{prefix}x{suffix}")

    monkeypatch.setattr("cnnexp.atomic_write.tempfile.mkstemp", full_disk)
    with pytest.raises(BaseException) as info:
        atomic_torch_save({"w": torch.zeros(100_000)}, path)
    message = user_error_message(info.value)
    assert message.startswith("no space left on the device") and "ENOSPC" in message and "Fix: " in message
    assert path.read_bytes() == before


@pytest.mark.parametrize("error", [
    PermissionError(errno.EACCES, "Permission denied", "/x/run/last.ckpt"),
    OSError(errno.EROFS, "Read-only file system", "/x"),
    RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                 "data/0: file write failed"),
])
def test_unwritable_folders_are_one_line(error):
    message = user_error_message(error)
    assert message is not None and "Fix: " in message and "\n" not in message


# -- end to end: one line, exit 2, nothing on disk ------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [
    (["data.batch_size=-1"], "error: data.batch_size=-1 is invalid: expected a positive integer. Fix: e.g."),
    (["+optimizer.lrr=1"], "error: optimizer: Adam has no argument 'lrr'"),
    ([REPLACE_DROPOUT], "error: model.net.layers.7: MaxPool2D has no argument 'rate'"),
    (["hydra.run.dir=a_file/run"], "error: cannot create the run folder a_file/run (Not a directory). Fix:"),
    (["-m", "data.batch_size=-1", "seed=1,2"], "error: data.batch_size=-1 is invalid"),  # every job would fail
], ids=["bad_value", "unknown_optimizer_argument", "replaced_layer", "unwritable_folder", "multirun"])
def test_config_errors_print_one_line_before_lightning_and_leave_no_folder(tmp_path, args, expected):
    (tmp_path / "a_file").write_text("")
    result = cnnexp(tmp_path, *args, importtime=True)
    lines = error_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith(expected) and "Fix:" in lines[0]
    assert not (tmp_path / "outputs").exists()
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "lightning" not in imported and "cnnexp.train" not in imported


@pytest.mark.slow
def test_resume_with_another_model_is_one_line_and_the_traceback_is_in_the_log(tmp_path):
    run = fake_run(tmp_path / "outputs" / "runs" / "tiny", ["model=tiny_cnn"])
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    result = cnnexp(tmp_path, "model=keras_cnn", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                    "debug=fast_dev_run")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot resume from {run}")
    assert "Traceback" not in result.stderr and "Error executing job" not in result.stderr
    (new,) = [p for p in (tmp_path / "outputs" / "runs").iterdir() if p.name != "tiny"]
    assert "Traceback" in (new / "train.log").read_text()  # the full story is in the run's log
    assert yaml.safe_load((new / "run.json").read_text())["exit_status"] == 2
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
