"""cnnexp.checkpoints: safe loading (a code-executing pickle is refused), atomic writes, the resume rule."""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from cnnexp import checkpoints
from cnnexp.checkpoints import UnsafeCheckpointError, atomic_torch_save, load_checkpoint, resolve_ckpt_path
from cnnexp.errors import ConfigError


class _RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def lightning_like_checkpoint() -> dict:
    """What Lightning writes: tensors, loop state, callback state, an OmegaConf/partial hparams node."""
    return {
        "epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.6.6",
        "state_dict": {"net.w": torch.randn(4, 3), "net.b": torch.zeros(4)},
        "loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 4}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val/acc'}": {"best_model_score": torch.tensor(0.9),
                                                                "dirpath": "outputs/runs/x/checkpoints",
                                                                "kth_value": torch.tensor(float("inf"))}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1]}]}],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"cfg": OmegaConf.create({"a": 1, "b": [1, None], "c": {"d": "x"}}),
                             "optimizer": functools.partial(torch.optim.Adam, lr=1e-3),
                             "path": Path("outputs/runs/x")},
    }


def test_lightning_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    ckpt = lightning_like_checkpoint()
    torch.save(ckpt, path)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["net.w"], ckpt["state_dict"]["net.w"])
    assert loaded["hyper_parameters"]["cfg"].c.d == "x"
    assert loaded["hyper_parameters"]["optimizer"].func is torch.optim.Adam


@pytest.mark.parametrize("fmt", ["torch_save", "raw_pickle"])
def test_code_executing_pickle_is_refused(tmp_path: Path, fmt: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    payload = {"state_dict": {"w": torch.ones(1)}, "x": _RunsCode(marker)}
    if fmt == "torch_save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "system" in str(info.value)
    assert not marker.exists(), "the pickle's code ran"
    # the same file does run code with a plain unsafe load: the test really exercises the danger
    if fmt == "torch_save":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize(("content", "match"), [(None, "not found"), (b"", "truncated"), (b"hello", "truncated")])
def test_missing_or_corrupt_checkpoint(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "x.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "t.ckpt"
    torch.save(lightning_like_checkpoint(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ConfigError, match="truncated"):
        load_checkpoint(path)


def test_atomic_save_failing_halfway_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"v": torch.arange(10)}, path)
    before = path.read_bytes()

    def half_then_die(obj, f, *args, **kwargs):  # noqa: ANN001, ANN202
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_die)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"v": torch.arange(99)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"], "a temporary file was left behind"


_WRITER = """
import sys, torch
from cnnexp.checkpoints import atomic_torch_save
big = torch.randn(8_000_000)  # 32 MB: each save takes a while
for i in range(1, 1000):
    print("saving", i, flush=True)
    atomic_torch_save({"i": i, "w": big}, sys.argv[1])
"""


def test_sigkill_mid_write_never_leaves_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    while proc.stdout.readline().split() != ["saving", "3"]:  # saves 1 and 2 are complete, 3 has started
        assert proc.poll() is None
    time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert load_checkpoint(path)["i"] in (2, 3)  # the old complete file or the new complete one
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert all(n.startswith(".last.ckpt.") and n.endswith(".tmp") for n in leftovers)


# -- resolve_ckpt_path ----------------------------------------------------------------------------------------
def make_run(root: Path, name: str, task: str = "train", files: tuple[str, ...] = ("last.ckpt",), age: float = 0.0
             ) -> Path:
    """A fake run folder `<root>/runs/<name>` with a saved config and empty checkpoint files `age` seconds old."""
    run = root / "runs" / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(f"task_name: {task}\ndata:\n  _target_: D\n")
    for f in files:
        p = run / "checkpoints" / f
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
        t = time.time() - age
        os.utime(p, (t, t))
    return run


def cfg_for(root: Path, **kw: object) -> object:
    base = {"task_name": "train", "data": {"_target_": "D"}, "ckpt_path": None, "resume": False,
            "paths": {"log_dir": str(root), "output_dir": str(root / "runs" / "current")}}
    base.update(kw)
    return OmegaConf.create(base)


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    return {
        "old": make_run(tmp_path, "2026-01-01_old", age=300),
        "new": make_run(tmp_path, "2026-01-02_new", age=100),
        "other_task": make_run(tmp_path, "2026-01-03_other", task="mnist", age=10),
        "no_ckpt": make_run(tmp_path, "2026-01-04_empty", files=()),
        "current": make_run(tmp_path, "current", age=0),
        "interrupted": make_run(tmp_path, "2026-01-00_int", files=("last.ckpt", "interrupted.ckpt"), age=400),
    }


RESOLVE_CASES = [  # (overrides, expected: run key / None / "explicit")
    ({}, None),
    ({"ckpt_path": "last"}, "new"),
    ({"resume": True}, "new"),
    ({"resume": "true"}, "new"),
    ({"task_name": "mnist", "resume": True}, "other_task"),
]


@pytest.mark.parametrize(("overrides", "expected"), RESOLVE_CASES, ids=[str(c[0]) for c in RESOLVE_CASES])
def test_resolve_rule(tmp_path: Path, runs: dict[str, Path], overrides: dict, expected: str | None) -> None:
    got = resolve_ckpt_path(cfg_for(tmp_path, **overrides))
    assert got == (None if expected is None else str(runs[expected] / "checkpoints" / "last.ckpt"))


def test_resume_run_folder_takes_newer_of_last_and_interrupted(tmp_path: Path, runs: dict[str, Path]) -> None:
    run = runs["interrupted"]
    last, interrupted = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "interrupted.ckpt"
    os.utime(interrupted, (time.time(), time.time()))
    assert resolve_ckpt_path(cfg_for(tmp_path, resume=str(run))) == str(interrupted)
    os.utime(last, (time.time() + 5, time.time() + 5))
    assert resolve_ckpt_path(cfg_for(tmp_path, resume=str(run))) == str(last)


def test_explicit_file_and_errors(tmp_path: Path, runs: dict[str, Path]) -> None:
    f = runs["old"] / "checkpoints" / "last.ckpt"
    assert resolve_ckpt_path(cfg_for(tmp_path, ckpt_path=str(f))) == str(f)
    with pytest.raises(ConfigError, match="ckpt_path=.*nope.ckpt: no such checkpoint"):
        resolve_ckpt_path(cfg_for(tmp_path, ckpt_path=str(tmp_path / "nope.ckpt")))
    with pytest.raises(ConfigError, match=r"searched .*2026-01-04_empty/checkpoints/last.ckpt"):
        resolve_ckpt_path(cfg_for(tmp_path, resume=str(runs["no_ckpt"])))
    with pytest.raises(ConfigError, match=rf"resume=true: no earlier run .* under {tmp_path}/runs/\*/"):
        resolve_ckpt_path(cfg_for(tmp_path, task_name="cifar10", resume=True))
    with pytest.raises(ConfigError, match=r"ckpt_path=last: no earlier run"):
        resolve_ckpt_path(cfg_for(tmp_path / "empty", ckpt_path="last"))


def test_safe_globals_has_no_code_runners() -> None:
    names = {f"{g.__module__}.{g.__name__}" for g in checkpoints.safe_globals()}
    for dangerous in ("posix.system", "builtins.eval", "builtins.exec", "subprocess.Popen", "builtins.getattr"):
        assert dangerous not in names


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    import random

    import numpy as np

    from cnnexp.checkpoints import rng_states, set_rng_states

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    atomic_torch_save({"rng": rng_states()}, tmp_path / "r.ckpt")
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_states(load_checkpoint(tmp_path / "r.ckpt")["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
