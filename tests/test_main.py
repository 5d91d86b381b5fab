"""`python -m cnnexp` as a user runs it: short errors with exit status 2, runs from any folder, sweeps go on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import InstantiationException, MissingConfigException
from omegaconf.errors import ConfigKeyError

from cnnexp.cli import user_error_message
from cnnexp.errors import ConfigError, DataError

FAST = ["model=tiny_cnn", "debug=fast_dev_run", "~callbacks.tensorboard_pictures", "~callbacks.rich_progress",
        "trainer.enable_progress_bar=false"]


def run_cnnexp(*args: str, cwd: Path, module: str = "cnnexp") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def wrapped(inner: BaseException, outer: type[BaseException] = InstantiationException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer("Error in call to target 'x'") from exc
    except BaseException as exc:
        return exc


@pytest.mark.parametrize("exc, expected", [
    (ConfigError("data.batch_size=-1 is invalid"), "data.batch_size=-1 is invalid"),
    (wrapped(DataError("no images in /x")), "no images in /x"),  # hydra wraps errors raised while building
    (MissingConfigException("Could not find 'data/nope'\n\nAvailable options in 'data':\n\tdigits\n"
                            "Config search path:\n\tprovider=main"), "Could not find 'data/nope'"),
    (ConfigKeyError("Key 'nope' is not in struct"), "Key 'nope' is not in struct"),
    (RuntimeError("a bug"), None),
    (wrapped(ZeroDivisionError("a bug")), None),
])
def test_user_error_message(exc, expected):
    message = user_error_message(exc)
    if expected is None:
        assert message is None  # bugs keep their traceback
    else:
        assert message.startswith(expected) and "search path" not in message


def test_unknown_option_lists_the_choices_and_exits_2(tmp_path):
    result = run_cnnexp("data=nope", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for option in ["digits", "mnist", "image_folder", "shapes"]:
        assert option in result.stderr
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.ckpt"))


def test_bad_override_exits_2(tmp_path):
    result = run_cnnexp("trainer.nope_key=1", cwd=tmp_path)
    assert result.returncode == 2 and "nope_key" in result.stderr and "Traceback" not in result.stderr


def test_help_and_cfg_do_not_import_lightning(tmp_path):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnexp", "--cfg", "job"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "optimized_metric: val/acc_best" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "lightning" not in imported and "torch" not in imported


@pytest.mark.slow
def test_run_from_another_folder_prints_the_accuracy_line(tmp_path):
    result = run_cnnexp(*FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("test/acc=") and "  run: outputs/runs/" in last
    run = tmp_path / last.split("run: ")[1]
    assert (run / "config_resolved.yaml").is_file() and (run / ".hydra" / "config.yaml").is_file()
    assert (run / "train.log").is_file()


@pytest.mark.slow
def test_multirun_failing_job_is_logged_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cnnexp("-m", *FAST, "data.batch_size=-1,16", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {p.name.split("_", 1)[0]: p for p in sweep.iterdir() if p.is_dir()}  # 0_data.batch_size=-1, 1_...
    failed, ok = (jobs["0"] / "train.log").read_text(), (jobs["1"] / "train.log").read_text()
    assert "data.batch_size=-1" in failed and "records NaN" in failed
    assert "failed" not in ok
    assert result.stdout.count("test/acc=") == 1


def test_experimental_rerun_points_to_cnnexp_rerun(tmp_path):
    result = run_cnnexp("--experimental-rerun", "x/.hydra/config.pickle", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --experimental-rerun is not supported") and "cnnexp.rerun" in result.stderr
