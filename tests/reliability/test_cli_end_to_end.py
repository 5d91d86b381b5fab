"""`python -m cnnexp` in a subprocess (cwd=tmp_path): bad config, shapes, NaN, SIGKILL + resume, SIGINT, SIGTERM
(run and multirun: exit 143), two runs started together, and `python -m cnnexp.rerun`. Digits + tiny_cnn + a few batches; each run takes ~10 s on a shared CPU."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnexp.checkpoints import load_checkpoint

pytestmark = pytest.mark.slow

HOOKS = Path(__file__).with_name("e2e_hooks.py")
SMALL = ["model=tiny_cnn", "logger=csv", "+trainer.limit_train_batches=6", "+trainer.limit_val_batches=2",
         "+trainer.limit_test_batches=2", "trainer.accelerator=cpu", "trainer.devices=1",
         "++callbacks.rich_progress=null", "++trainer.enable_progress_bar=false"]
GUARDS = ["++callbacks.nan_guard._target_=cnnexp.lit.callbacks.nan_guard.NanGuard",
          "++callbacks.interrupt_checkpoint._target_=cnnexp.lit.callbacks.interrupt_checkpoint.InterruptCheckpoint",
          "++trainer.plugins=[{_target_:cnnexp.lit.atomic_checkpoint_io.AtomicCheckpointIO}]"]
# Lightning 2.6's ModelCheckpoint(save_last=True) rewrites last.ckpt only when it also saves a top-k checkpoint,
# i.e. when val/acc improves; a second ModelCheckpoint without a monitor keeps last.ckpt at the latest epoch.
LAST_EVERY_EPOCH = ["callbacks.model_checkpoint.save_last=false",
                    "++callbacks.last_checkpoint._target_=lightning.pytorch.callbacks.ModelCheckpoint",
                    "++callbacks.last_checkpoint.dirpath=${paths.output_dir}/checkpoints",
                    "++callbacks.last_checkpoint.filename=last", "++callbacks.last_checkpoint.monitor=null",
                    "++callbacks.last_checkpoint.save_top_k=1",
                    "++callbacks.last_checkpoint.enable_version_counter=false"]
# tiny_cnn with a Dropout: training draws from the global RNG, which InterruptCheckpoint keeps in every checkpoint
WITH_DROPOUT = ("model.net.layers=[{_target_:cnnexp.layers.Rescaling,scale:0.00392156862745098},"
                "{_target_:cnnexp.layers.Conv2D,filters:8,kernel_size:3,padding:same,activation:relu},"
                "{_target_:cnnexp.layers.MaxPool2D},{_target_:cnnexp.layers.Dropout,rate:0.5},"
                "{_target_:cnnexp.layers.Flatten},{_target_:cnnexp.layers.Dense,units:null}]")
FOUR_POOLS = ("model.net.layers=[" + ",".join(["{_target_:cnnexp.layers.MaxPool2D}"] * 4)
              + ",{_target_:cnnexp.layers.Flatten},{_target_:cnnexp.layers.Dense,units:null}]")


def cnnexp(cwd: Path, *overrides: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnexp", *overrides], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def start(cwd: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnexp", *overrides], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def runs(cwd: Path) -> list[Path]:
    return sorted((cwd / "outputs" / "runs").glob("*/"))


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended early:\n{proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def pause_at(cwd: Path, step: int) -> list[str]:
    """Overrides that add the PauseAt callback (copied next to the run, where `python -m` imports it from)."""
    shutil.copy(HOOKS, cwd / "e2e_hooks.py")
    return ["++callbacks.pause._target_=e2e_hooks.PauseAt", f"++callbacks.pause.step={step}",
            f"++callbacks.pause.folder={cwd}"]


def metrics(run: Path) -> dict[str, str]:
    """The last logged value of every metric in the run's csv/metrics.csv."""
    last: dict[str, str] = {}
    with open(run / "csv" / "metrics.csv") as f:
        for row in csv.DictReader(f):
            last.update({k: v for k, v in row.items() if v not in ("", None)})
    return last


@pytest.mark.parametrize(("overrides", "expected"), [
    (["data.batch_size=-1"], "data.batch_size=-1 is invalid: expected a positive integer"),
    (["optimizer.lr=0"], "optimizer.lr=0 is invalid"),
    (["model.net.layers.1.kernel_size=0"], "model.net.layers.1.kernel_size=0 (Conv2D) is invalid"),
    (["data=nope"], "Could not find 'data/nope'\n\nAvailable options in 'data':\n"),
    ([FOUR_POOLS, "data.image_size=null"], "(MaxPool2D) cannot take input of shape (1, 1, 1)"),  # 8x8 digits
    (["resume=true"], "resume=true: no earlier run with checkpoints/last.ckpt under outputs/runs/*/"),
    (["ckpt_path=evil.ckpt", GUARDS[-1]], "refused to load evil.ckpt: it asks to run or rebuild posix.system"),
], ids=["batch_size", "lr", "kernel_size", "unknown_group_option", "four_pools_on_8x8", "nothing_to_resume",
        "malicious_checkpoint"])
def test_bad_input_exits_2_with_a_message(tmp_path: Path, overrides: list[str], expected: str) -> None:
    import os

    import torch

    class RunsCode:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"state_dict": {}, "x": RunsCode()}, tmp_path / "evil.ckpt")
    result = cnnexp(tmp_path, *overrides, "debug=fast_dev_run")
    assert result.returncode == 2, result.stderr[-3000:]
    assert expected in result.stderr
    if "data=nope" in overrides:
        assert "\n  digits\n" in result.stderr and "\n  mnist\n" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("outputs/runs/*/checkpoints/*.ckpt")), "nothing should have been trained"
    assert not (tmp_path / "pwned").exists()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    # epoch 0 trains normally; StepLR multiplies the lr by 1e12 each epoch, so the loss overflows to NaN later
    result = cnnexp(tmp_path, *SMALL, *GUARDS, "trainer.max_epochs=4", "optimizer=sgd", "scheduler=step",
                    "scheduler.step_size=1", "scheduler.gamma=1e12")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "error: the training loss is nan at global step" in result.stderr
    assert "the last finite loss was" in result.stderr and "(epoch " in result.stderr
    (run,) = runs(tmp_path)
    last = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert all(t.isfinite().all() for t in last["state_dict"].values())


# same seed, deterministic algorithms and thread count (float sums depend on how work is split across threads)
REPEATABLE = [*SMALL, *GUARDS, *LAST_EVERY_EPOCH, WITH_DROPOUT, "trainer.max_epochs=4", "trainer.deterministic=true",
              "seed=7", "++torch_threads=1"]


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory) -> Path:
    """The run folder of REPEATABLE trained start to end, once for both ways of resuming."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    full = cnnexp(folder, *REPEATABLE)
    assert full.returncode == 0, full.stderr[-3000:]
    (run,) = runs(folder)
    return run


@pytest.mark.parametrize("how", ["ckpt_path=last", "resume=true"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, uninterrupted_run: Path, how: str) -> None:
    b = tmp_path / "b"
    b.mkdir()
    proc = start(b, *REPEATABLE, *pause_at(b, 6 * 2 + 3))  # epoch 2, batch 3
    wait_for(b / "paused", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    (killed,) = runs(b)
    assert load_checkpoint(killed / "checkpoints" / "last.ckpt")["epoch"] == 1

    resumed = cnnexp(b, *REPEATABLE, how)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_run = runs(b)[-1]
    want, got = metrics(uninterrupted_run), metrics(resumed_run)
    for key in ("val/loss", "val/acc", "train/loss", "test/acc", "test/loss", "epoch"):
        assert got[key] == want[key], key
    with open(resumed_run / "csv" / "metrics.csv") as f:  # it resumed (epoch 2 onwards), not trained afresh
        assert min(int(row["epoch"]) for row in csv.DictReader(f) if row["epoch"]) == 2


def test_sigint_saves_checkpoint_exits_cleanly_and_resumes(tmp_path: Path) -> None:
    args = [*SMALL, *GUARDS, *LAST_EVERY_EPOCH, "trainer.max_epochs=3"]
    proc = start(tmp_path, *args, *pause_at(tmp_path, 8))  # epoch 1, batch 2
    wait_for(tmp_path / "paused", proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    (tmp_path / "go").touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]  # Lightning's graceful shutdown after KeyboardInterrupt
    assert "Traceback" not in err
    (run,) = runs(tmp_path)
    path = run.resolve() / "checkpoints" / "interrupted.ckpt"  # ModelCheckpoint's folder, made absolute
    assert f"Ctrl-C: saved {path} at epoch 1, global step 9." in err
    resume_line = next(line for line in err.splitlines() if line.startswith("Resume with: python -m cnnexp "))
    assert f"resume={run.resolve()}" in resume_line and "'++trainer.plugins=" in resume_line
    ckpt = load_checkpoint(path)
    assert ckpt["global_step"] == 9 and ckpt["epoch"] == 1

    resumed = cnnexp(tmp_path, *args, "resume=true")  # picks interrupted.ckpt: newer than last.ckpt
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = load_checkpoint(runs(tmp_path)[-1] / "checkpoints" / "last.ckpt")
    assert final["epoch"] == 2 and final["global_step"] == 3 * 6
    with open(runs(tmp_path)[-1] / "csv" / "metrics.csv") as f:  # it went on from epoch 1, step 9
        steps = [int(row["step"]) for row in csv.DictReader(f) if row["step"] and row["epoch"]]
    assert min(steps) >= 9


def test_two_runs_started_together_get_distinct_folders(tmp_path: Path) -> None:
    procs = [start(tmp_path, "debug=fast_dev_run", "model=tiny_cnn") for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    folders = runs(tmp_path)
    assert len(folders) == 2
    for folder, (out, _) in zip(folders, sorted(outs, key=lambda o: o[0].rsplit("run: ", 1)[-1])):
        assert (folder / "config_resolved.yaml").is_file() and (folder / ".hydra" / "config.yaml").is_file()
        assert out.strip().endswith(f"run: outputs/runs/{folder.name}")


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "multirun"])
def test_sigterm_saves_checkpoint_and_exits_143(tmp_path: Path, multirun: bool) -> None:
    """SLURM / Kubernetes stop jobs with SIGTERM: the run must save interrupted.ckpt and not look like a success
    (in a sweep too: the job's SIGTERM is not recorded as a finished job)."""
    import json

    sweep = ["-m", "seed=1,2"] if multirun else []
    proc = start(tmp_path, *sweep, *SMALL, *GUARDS, "trainer.max_epochs=3", *pause_at(tmp_path, 8))
    wait_for(tmp_path / "paused", proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    (tmp_path / "go").touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "test/acc=" not in out and "Traceback" not in err
    (run,) = sorted((tmp_path / "outputs" / "multirun").glob("*/0_seed=1")) if multirun else runs(tmp_path)
    assert load_checkpoint(run / "checkpoints" / "interrupted.ckpt")["global_step"] == 9
    info = json.loads((run / "run.json").read_text())
    assert (info["status"], info["exit_status"]) == ("interrupted", 143)


def test_rerun_repeats_a_run_in_a_new_folder_and_leaves_the_original_untouched(tmp_path: Path) -> None:
    import json

    first = cnnexp(tmp_path, *SMALL, "trainer.max_epochs=2", "trainer.deterministic=true", "tags=[first]")
    assert first.returncode == 0, first.stderr[-3000:]
    (original,) = runs(tmp_path)
    before = {p: p.read_bytes() for p in original.rglob("*") if p.is_file()}
    result = subprocess.run([sys.executable, "-m", "cnnexp.rerun", str(original.relative_to(tmp_path)),
                             "tags=[again]"], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p: p.read_bytes() for p in original.rglob("*") if p.is_file()} == before  # byte for byte
    (new,) = [r for r in runs(tmp_path) if r != original]
    info = json.loads((new / "run.json").read_text())
    assert info["rerun_of"] == str(original.resolve()) and info["tags"] == ["again"]
    old_info = json.loads((original / "run.json").read_text())
    assert info["metrics"]["test/acc"] == old_info["metrics"]["test/acc"]
    assert info["metrics"]["val/loss"] == old_info["metrics"]["val/loss"]
    table = result.stdout[result.stdout.index("metric "):]
    assert "test/acc" in table and "same" in table and "diff" not in table

    refused = subprocess.run([sys.executable, "-m", "cnnexp.rerun", str(original), f"hydra.run.dir={original}"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert refused.returncode == 2 and "a rerun never writes into another run's folder" in refused.stderr
    assert {p: p.read_bytes() for p in original.rglob("*") if p.is_file()} == before
