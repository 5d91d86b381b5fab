"""Wall time of the default run (`python -m cnnexp`) and where it goes: startup, imports, data, fit, test,
pictures, checkpoints.

Each run is a fresh `python -m cnnexp [overrides]` process (imports included), started through a small
bootstrap that wraps a few methods with timers before the real entry point runs (the wrappers cost
microseconds):
  startup      python start-up, hydra, composing the config (until train() is called);
  imports      lightning, torch, torchmetrics and the model code (the first thing train() needs);
  data         building the data sets (load_digits, the resize);
  fit          trainer.fit, of which pictures (TensorBoardPictures hooks) and checkpoints (trainer.save_checkpoint)
               are also shown on their own; train+val = fit - pictures - checkpoints;
  test         trainer.test (loading the best checkpoint included);
  other        the rest (building the model, loggers, the hparams and graph, closing files).
Prints one table (median of the runs) with the test accuracy and writes JSON.

    python scripts/bench_default.py                       # 3 runs of the default
    python scripts/bench_default.py --runs 1 seed=0       # overrides go to python -m cnnexp
    python scripts/bench_default.py --ablate              # also 3 runs without the pictures, interleaved
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTS = ["startup", "imports", "data", "fit", "pictures", "checkpoints", "test", "other"]

# Runs in the child process: time the parts, then hand over to `python -m cnnexp`.
BOOTSTRAP = r"""
import json, os, runpy, sys, time
T0 = float(os.environ["CNNEXP_BENCH_T0"])
parts = {}
def add(name, seconds):
    parts[name] = parts.get(name, 0.0) + seconds
def timed(owner, attr, name):
    original = getattr(owner, attr)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            add(name, time.perf_counter() - start)
    setattr(owner, attr, wrapper)
import cnnexp.train as train_module
original_train = train_module.train
def train(cfg):
    add("startup", time.time() - T0)
    start = time.perf_counter()
    import lightning, torch, torchmetrics, hydra.utils
    import cnnexp.lit, cnnexp.models, cnnexp.layers, cnnexp.data.base
    from cnnexp.lit.callbacks.tensorboard_pictures import TensorBoardPictures
    add("imports", time.perf_counter() - start)
    timed(cnnexp.data.base.BaseDataModule, "setup", "data")
    timed(lightning.pytorch.Trainer, "fit", "fit")
    timed(lightning.pytorch.Trainer, "test", "test")
    timed(lightning.pytorch.Trainer, "save_checkpoint", "checkpoints")
    for attr in [a for a in vars(TensorBoardPictures) if a.startswith("on_")]:
        timed(TensorBoardPictures, attr, "pictures")
    metrics = original_train(cfg)
    parts["test/acc"] = metrics.get("test/acc")
    return metrics
train_module.train = train
def save():
    parts["wall"] = time.time() - T0
    with open(os.environ["CNNEXP_BENCH_OUT"], "w") as f:
        json.dump(parts, f)
import atexit
atexit.register(save)
sys.argv = ["cnnexp"] + sys.argv[1:]
runpy.run_module("cnnexp", run_name="__main__", alter_sys=True)
"""


def run_once(overrides: list[str], folder: Path, tag: str) -> dict[str, float]:
    """One `python -m cnnexp` process with the timers; returns its parts (seconds) and `wall`."""
    out = folder / f"{tag}.json"
    env = {**os.environ, "CNNEXP_BENCH_OUT": str(out)}
    args = [sys.executable, "-c", BOOTSTRAP, f"hydra.run.dir={folder / tag}", *overrides]
    env["CNNEXP_BENCH_T0"] = repr(time.time())
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"python -m cnnexp {' '.join(overrides)} failed:\n{proc.stderr[-3000:]}")
    parts = json.loads(out.read_text())
    fit = parts.get("fit", 0.0)
    parts["train+val"] = fit - parts.get("pictures", 0.0) - parts.get("checkpoints", 0.0)
    counted = sum(parts.get(k, 0.0) for k in ["startup", "imports", "data", "fit", "test"])
    parts["other"] = parts["wall"] - counted
    return parts


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each configuration (median reported)")
    parser.add_argument("--ablate", action="store_true",
                        help="also run without the pictures, interleaved A B B A ... (on a loaded machine the wall "
                             "times of two runs differ by more than the pictures cost: trust the in-run timer)")
    parser.add_argument("--out", default="bench-results/bench_default.json", help="where to write the JSON")
    args, overrides = parser.parse_known_args()
    configs = {"default": overrides}
    if args.ablate:
        configs["no pictures"] = [*overrides, "~callbacks.tensorboard_pictures"]
    load_before = os.getloadavg()[0]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="bench_default_") as tmp:
        for i in range(args.runs):
            order = list(configs.items())
            for name, ovr in order if i % 2 == 0 else order[::-1]:  # A B, B A, ...: a load drift hits both alike
                results[name].append(run_once(ovr, Path(tmp), f"{name.replace(' ', '_')}_{i}"))
    load_after = os.getloadavg()[0]

    columns = ["wall", "startup", "imports", "data", "fit", "train+val", "pictures", "checkpoints", "test", "other"]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; load average {load_before:.1f} before, "
          f"{load_after:.1f} after; median of {args.runs} run(s), seconds")
    print(f"{'config':<12}" + "".join(f"{c:>12}" for c in columns) + f"{'test/acc':>10}")
    summary = {}
    for name, runs in results.items():
        med = {c: statistics.median(r.get(c, 0.0) for r in runs) for c in columns}
        accs = [r.get("test/acc") for r in runs]
        summary[name] = {"median": med, "runs": runs}
        print(f"{name:<12}" + "".join(f"{med[c]:>12.2f}" for c in columns) + f"{statistics.median(accs):>10.4f}")
    default = summary["default"]["median"]
    print(f"pictures: {default['pictures'] / default['wall']:.1%} of the default run's wall time (in-run timers)")
    if args.ablate:
        saved = default["wall"] - summary["no pictures"]["median"]["wall"]
        print(f"without pictures: {saved:+.2f} s wall ({saved / default['wall']:.1%}), side by side")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "cpu": cpu_model(), "cores": os.cpu_count(), "load_before": load_before, "load_after": load_after,
        "overrides": overrides, "runs": args.runs, "results": summary,
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
