"""Time the real `python -m cnnexp` training path of the lecture model, custom conv vs native, and Keras/TensorFlow.

The model is built from cnnexp/conf/model/keras_cnn.yaml (Rescaling, 3x[Conv 3x3 same + ReLU + MaxPool], Flatten,
Dense 128, Dense 5) and trained with Adam on in-memory random uint8 images (`data=random`), at the lecture's
180x180 b32 and at 32x32 b128. For each conv implementation (`custom`, `torch`, `torch_cl` = native with
channels_last weights and activations), three ways of training, interleaved round-robin, medians of `--repeats`:

  bare       a plain loop: forward, cross-entropy, backward, Adam.step over the epoch's batches, held in memory;
  loader     the same plain loop over the DataModule's training DataLoader (each batch gathered from the in-memory
             images and cast, as in the two Lightning modes): what the data loading alone adds to `bare`;
  lightning  `lightning.Trainer.fit` on the DataModule with no callbacks and no logger (the framework's own cost);
  default    the same with the default run's callbacks and TensorBoard logger (pictures, checkpoints, early
             stopping, lr monitor, NaN guard...): what `python -m cnnexp` does.

Images per second count training images after the first (warm-up) epoch; validation runs on `--eval` images per
epoch and is not counted as training time in `bare`, but is in the other two (it is part of a real epoch). An epoch
is as long as the real data set's of that shape (the lecture's flowers: 92 batches of 32 at 180x180; CIFAR-10: 352
batches of 128 at 32x32), because the epoch-end work (validation, checkpoints, pictures) weighs on a step as much as
in a real run only when the epoch is as long as a real one; `--batches N` sets one length for every shape.
Freed memory is retained (`cnnexp.cpu_memory`, as `python -m cnnexp` does) for every implementation alike;
`--system-malloc` keeps glibc's defaults.
Keras/TensorFlow (`model.fit` on the same images, the lecture's own system) runs in a subprocess when tensorflow
is importable (the `bench` extra: `pip install -e '.[bench]'`); without it the script says so and skips. The
worker reports the cores it kept busy (CPU seconds over wall seconds): tf.data has a thread pool that TensorFlow's
threading settings do not bound, so `--threads 1` is one thread for Keras's step, not necessarily one core (pinning
the worker to one core is no fix: its threads then wait on each other; docs/benchmarks.md).
Prints a table of images/s and ratios (custom / native; framework overhead between runs, 1 - lightning / bare, and
in the run: each run also times its bare step's work (forward, backward, update; `StepTimer`) against its wall
time, and the in-run overhead is the bare loop's share over the mode's, less one; the `data` column is the same
figure for `loader`, the part of the Lightning modes' overhead that a plain loop over the DataLoader pays too) and
writes JSON.

    python scripts/bench_train.py                # both shapes (a few minutes on 2 cores)
    python scripts/bench_train.py --quick        # smoke run
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

from cnnexp.bench_results import add_memory_flag, apply_memory_flag, memory_note, write_results
from cnnexp.provenance import cpu_model

SHAPES = {"180x180 b32": (180, 32), "32x32 b128": (32, 128)}  # name -> (image side, batch size)
EPOCH_BATCHES = {"180x180 b32": 92, "32x32 b128": 352}  # flowers' 2,936 training images; CIFAR-10's 45,000
QUICK_SHAPES = {"40x40 b8": (40, 8)}
IMPLS = ("custom", "torch", "torch_cl")
MODES = ("bare", "loader", "lightning", "default")
CLASSES = 5


def compose(side: int, batch: int, impl: str, n_train: int, n_eval: int, out_dir: Path):
    """The composed run config for one measurement (the package's own config, as `python -m cnnexp` builds it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import cnnexp.conf  # noqa: F401  (resolvers)

    overrides = ["data=random", f"data.image_size=[{side},{side}]", f"data.batch_size={batch}",
                 f"data.num_train={n_train}", f"data.num_eval={n_eval}", f"data.num_classes={CLASSES}",
                 "model=keras_cnn", f"model.conv_impl={'custom' if impl == 'custom' else 'torch'}",
                 "scheduler=none", "torch_threads=null"]
    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.paths.root_dir = cfg.paths.log_dir = str(out_dir.parent)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def build(cfg, impl: str):
    """(datamodule, ImageClassifier) from the config, channels_last for `torch_cl`."""
    import torch
    from hydra.utils import instantiate

    from cnnexp.train import fill_data_shape

    datamodule = instantiate(cfg.data)
    fill_data_shape(cfg, datamodule)
    model = instantiate(cfg.model)
    if impl == "torch_cl":
        model = model.to(memory_format=torch.channels_last)
    return datamodule, model


class StepTimer:
    """Seconds a run spends on the bare step's own work: the network's forward in training mode, the backward and
    the optimizer's update (`seconds`), counted only while `counting`. Read in the same run as its wall time, so
    that `wall / seconds - 1` is the run's overhead over its bare step whatever the machine's speed does meanwhile
    (between runs it can drift by more than the overhead: docs/benchmarks.md). The loss, `zero_grad` and the
    metrics update are not counted, so the overhead includes them (a bare loop measures its own floor this way)."""

    def __init__(self, model) -> None:
        self.seconds, self.counting = 0.0, False
        self._wrap_forward(model)
        self._wrap_backward(model)
        self._wrap_optimizer_step(model)

    def _wrap_forward(self, model) -> None:
        """The LightningModule's forward (the net's, called by `model_step`), timed in training mode only; wrapped
        from outside, not with module hooks, which a compiled net would trace."""
        forward = model.forward

        def timed_forward(*args, **kwargs):
            return self.timed(forward, *args, **kwargs) if model.training else forward(*args, **kwargs)

        model.forward = timed_forward

    def timed(self, fn, *args, **kwargs):
        """fn(*args, **kwargs), its time counted."""
        result, seconds = clocked(fn, *args, **kwargs)
        if self.counting:
            self.seconds += seconds
        return result

    def _wrap_backward(self, model) -> None:
        backward = model.backward
        model.backward = lambda *args, **kwargs: self.timed(backward, *args, **kwargs)

    def _wrap_optimizer_step(self, model) -> None:
        """The LightningModule hook runs `optimizer.step(closure)`, the closure being the training step and the
        backward (counted apart): the update is the hook's time less the closure's."""
        optimizer_step = model.optimizer_step

        def timed_step(epoch, batch_idx, optimizer, optimizer_closure=None):
            closure_s = 0.0

            def closure():
                nonlocal closure_s
                result, seconds = clocked(optimizer_closure)
                closure_s += seconds
                return result

            result, seconds = clocked(optimizer_step, epoch, batch_idx, optimizer, closure)
            if self.counting:
                self.seconds += seconds - closure_s
            return result

        model.optimizer_step = timed_step


def clocked(fn, *args, **kwargs):
    """(fn(*args, **kwargs), the seconds it took)."""
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


def time_bare(cfg, impl: str, epochs: int, loader: bool = False) -> tuple[float, float]:
    """(training images per second, the step's work share) of a plain loop over the training set's batches: held
    in memory, or with `loader` drawn from the DataModule's training DataLoader each epoch."""
    import torch
    import torch.nn.functional as F

    datamodule, model = build(cfg, impl)
    datamodule.setup()
    batches = datamodule.train_dataloader() if loader else list(datamodule.train_dataloader())
    if impl == "torch_cl" and not loader:  # the Lightning modes, like `loader`, feed the loader's NCHW batches
        batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    optimizer = model.configure_optimizers()["optimizer"]
    net = model.net.train()
    timer = StepTimer(model)
    start, images = 0.0, 0
    for epoch in range(epochs):
        if epoch == 1:
            start, images, timer.counting = time.perf_counter(), 0, True
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(timer.timed(net, x), y)
            timer.timed(loss.backward)
            timer.timed(optimizer.step)
            images += x.shape[0]
    wall = time.perf_counter() - start
    return images / wall, timer.seconds / wall


class EpochClock:
    """A Lightning callback: training images per second from the end of the first epoch to the end of fit.

    It counts an epoch's images at the epoch's end (the training set's size), not per batch: a per-batch hook would
    add its own dispatch to the overhead it measures."""

    def __new__(cls, timer: StepTimer):  # defined lazily so that --help does not import lightning
        from lightning.pytorch.callbacks import Callback

        class _Clock(Callback):
            def __init__(self) -> None:
                self.start, self.images, self.timer = 0.0, 0, timer

            def on_train_epoch_end(self, trainer, pl_module) -> None:
                if trainer.current_epoch == 0:
                    self.start = time.perf_counter()
                    self.timer.counting = True
                else:
                    self.images += len(trainer.train_dataloader.dataset)

            def on_train_end(self, trainer, pl_module) -> None:
                wall = time.perf_counter() - self.start
                self.images_per_s, self.step_share = self.images / wall, self.timer.seconds / wall

        return _Clock()


def time_lightning(cfg, impl: str, epochs: int, with_defaults: bool) -> tuple[float, float]:
    """(training images per second, the step's work share) through `Trainer.fit` (validation included in the
    time, as in a real epoch)."""
    from hydra.utils import instantiate

    from cnnexp.train import instantiate_dict, quiet_library_output

    quiet_library_output()
    datamodule, model = build(cfg, impl)
    clock = EpochClock(StepTimer(model))
    callbacks = [clock] + (instantiate_dict(cfg.callbacks) if with_defaults else [])
    loggers = instantiate_dict(cfg.logger) if with_defaults else []
    extra = {} if with_defaults else {"enable_checkpointing": False, "enable_progress_bar": False}
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, max_epochs=epochs,
                          min_epochs=epochs, num_sanity_val_steps=0, **extra)
    trainer.fit(model, datamodule=datamodule)
    for logger in loggers:
        logger.finalize("success")
    return clock.images_per_s, clock.step_share


KERAS_WORKER = r"""
import json, os, sys, time
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
side, batch, n_train, n_eval, epochs, threads = map(int, sys.argv[1:7])
if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
from tensorflow import keras
from tensorflow.keras import layers
rng = np.random.default_rng(42)
x = rng.integers(0, 256, (n_train + n_eval, side, side, 3), dtype=np.uint8).astype("float32")
y = rng.integers(0, 5, n_train + n_eval)
model = keras.Sequential([keras.Input((side, side, 3)), layers.Rescaling(1.0 / 255),
    layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
    layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
    layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
    layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(5)])
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
class Clock(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.start, self.cpu = time.perf_counter(), time.process_time()
    def on_train_end(self, logs=None):
        wall = time.perf_counter() - self.start
        self.rate, self.cores = n_train * (epochs - 1) / wall, (time.process_time() - self.cpu) / wall
clock = Clock()
model.fit(x[:n_train], y[:n_train], batch_size=batch, epochs=epochs, verbose=0, shuffle=True, callbacks=[clock],
          validation_data=(x[n_train:], y[n_train:]))
print(json.dumps({"images_per_s": clock.rate, "cores": clock.cores, "tensorflow": tf.__version__}))
"""


def keras_env(tf_path: str | None) -> dict[str, str]:
    """The Keras worker's environment: `--tf-path` (a folder with tensorflow, e.g. from `pip install --target`)
    goes first on its PYTHONPATH only, so TensorFlow's thread pools never share this process with torch."""
    env = dict(os.environ)
    if tf_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (tf_path, env.get("PYTHONPATH")) if p)
    return env


def keras_available(tf_path: str | None) -> bool:
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is None)"
    return subprocess.run([sys.executable, "-c", probe], env=keras_env(tf_path)).returncode == 0


def time_keras(side: int, batch: int, n_train: int, n_eval: int, epochs: int, threads: int,
               tf_path: str | None) -> tuple[float, float, str]:
    """Training images per second of Keras's `model.fit` with `validation_data` of `n_eval` images, as cnnexp's
    Lightning paths validate each epoch, the cores it kept busy meanwhile (CPU seconds / wall seconds) and the
    TensorFlow version."""
    cmd = [sys.executable, "-c", KERAS_WORKER, str(side), str(batch), str(n_train), str(n_eval), str(epochs),
           str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=keras_env(tf_path))
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return out["images_per_s"], out["cores"], out["tensorflow"]


def table(rows: list[dict], shapes: dict) -> str:
    """Images/s per mode; overhead between runs (1 - rate / bare rate) and in the run (the bare loop's step-work
    share / the mode's - 1: both read within one run, so the machine's drift between runs cancels; `data` is that of
    `loader`, the DataLoader's own part); custom / native and custom / Keras of the default path."""
    lines = [f"{'shape':<12} {'impl':<9} {'bare img/s':>10} {'lightning':>10} {'default':>10} "
             f"{'overhead L':>10} {'overhead D':>10} {'in-run L':>8} {'in-run D':>8} {'data':>6} {'custom/torch':>12} "
             f"{'custom/torch_cl':>15} {'vs keras':>9}"]
    for shape in shapes:
        med = {(r["impl"], r["mode"]): r["images_per_s"] for r in rows if r["shape"] == shape}
        share = {(r["impl"], r["mode"]): r["step_share"] for r in rows if r["shape"] == shape and "step_share" in r}
        keras = med.get(("keras", "fit"))
        for impl in IMPLS:
            if (impl, "bare") not in med:
                continue
            bare, lit, default = (med.get((impl, m), float("nan")) for m in ("bare", "lightning", "default"))
            in_run = lambda mode, width=8: (f"{share[(impl, 'bare')] / share[(impl, mode)] - 1:{width}.0%}"
                                            if (impl, mode) in share else f"{'':{width}}")
            ratio = lambda ref: (f"{default / med[(ref, 'default')]:.2f}"
                                 if impl == "custom" and (ref, "default") in med else "")
            vs_keras = f"{default / keras:.2f}" if keras else ""
            lines.append(f"{shape:<12} {impl:<9} {bare:10.0f} {lit:10.0f} {default:10.0f} "
                         f"{1 - lit / bare:10.0%} {1 - default / bare:10.0%} {in_run('lightning')} "
                         f"{in_run('default')} {in_run('loader', 6)} {ratio('torch'):>12} {ratio('torch_cl'):>15} "
                         f"{vs_keras:>9}")
        if keras:
            lines.append(f"{shape:<12} {'keras/tf':<9} {'':>10} {'':>10} {keras:10.0f}   (model.fit)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one small shape, few images (smoke run)")
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"comma list of {', '.join(SHAPES)}")
    p.add_argument("--threads", type=int, default=None,
                   help="torch's intra-op threads and TensorFlow's (default: one per core)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats per measurement (median)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per measurement; the first one is warm-up")
    p.add_argument("--batches", type=int, default=None,
                   help="training batches per epoch (default: the real data set's, flowers 92 at 180x180 b32, "
                        "CIFAR-10 352 at 32x32 b128; 48 with --quick)")
    p.add_argument("--eval", type=int, default=None, help="validation images per epoch (default: one batch)")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma list of custom, torch, torch_cl")
    p.add_argument("--modes", default=",".join(MODES), help="comma list of bare, loader, lightning, default")
    p.add_argument("--no-keras", action="store_true", help="skip Keras/TensorFlow even when it is installed")
    p.add_argument("--tf-path", default=None, help="a folder holding tensorflow for the Keras worker only")
    add_memory_flag(p)
    p.add_argument("--out", default="bench-results/bench_train.json")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    retained = apply_memory_flag(args)
    shapes = QUICK_SHAPES if args.quick else {k: SHAPES[k] for k in args.shapes.split(",") if k}
    repeats = args.repeats or (1 if args.quick else 3)
    epoch_batches = {shape: args.batches or EPOCH_BATCHES.get(shape, 48) for shape in shapes}
    impls = [k for k in args.impls.split(",") if k]
    modes = [m for m in args.modes.split(",") if m]
    run_keras = not args.no_keras and keras_available(args.tf_path)
    load_before = os.getloadavg()
    samples: dict[tuple[str, str, str], list[float]] = {}
    shares: dict[tuple[str, str, str], list[float]] = {}
    tf_version, keras_cores = None, {}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        for shape, (side, batch) in shapes.items():
            n_train, n_eval = batch * epoch_batches[shape], args.eval or batch
            for rep in range(repeats):
                for impl in impls:
                    for mode in modes:
                        out_dir = Path(tmp) / f"{impl}-{mode}-{rep}" / "run"
                        cfg = compose(side, batch, impl, n_train, n_eval, out_dir)
                        rate, share = (time_bare(cfg, impl, args.epochs, loader=mode == "loader")
                                       if mode in ("bare", "loader")
                                       else time_lightning(cfg, impl, args.epochs, with_defaults=mode == "default"))
                        samples.setdefault((shape, impl, mode), []).append(rate)
                        shares.setdefault((shape, impl, mode), []).append(share)
                        print(f"  {shape} {impl:<8} {mode:<9} {rate:8.1f} img/s, step work {share:.1%} of the "
                              f"time", flush=True)
                if run_keras:
                    rate, cores, tf_version = time_keras(side, batch, n_train, n_eval, args.epochs,
                                                        torch.get_num_threads(), args.tf_path)
                    samples.setdefault((shape, "keras", "fit"), []).append(rate)
                    keras_cores.setdefault(shape, []).append(cores)
                    print(f"  {shape} keras/tf fit       {rate:8.1f} img/s, {cores:.2f} cores busy", flush=True)
    rows = [{"shape": s, "impl": i, "mode": m, "images_per_s": statistics.median(v), "samples": v}
            | ({"step_share": statistics.median(shares[s, i, m]), "step_share_samples": shares[s, i, m]}
               if (s, i, m) in shares else {})
            for (s, i, m), v in samples.items()]
    cpu = cpu_model()
    print(f"\nCPU {cpu}, threads {torch.get_num_threads()}, {memory_note(retained)}, "
          f"load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; medians of {repeats}")
    skipped = "--no-keras" if args.no_keras else "tensorflow is not installed: pip install -e '.[bench]'"
    print("Keras/TensorFlow: " + (f"tensorflow {tf_version}" if run_keras else f"skipped ({skipped})"))
    print(table(rows, shapes))
    meta = {"cpu": cpu, "threads": torch.get_num_threads(), "retain_freed_memory": retained, "torch": torch.__version__,
            "python": platform.python_version(), "tensorflow": tf_version, "keras_cores_busy": keras_cores,
            "repeats": repeats,
            "epochs": args.epochs, "batches": epoch_batches,
            "argv": sys.argv[1:] if argv is None else argv,
            "load_avg_before": load_before, "load_avg_after": os.getloadavg()}
    write_results(args.out, meta, rows)


if __name__ == "__main__":
    main()
