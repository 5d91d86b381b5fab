"""`python -m cnnexp.plan [overrides]`: plan a config's model ahead of time and print the choice per layer.

Builds the network the config describes (the same overrides as `python -m cnnexp`, e.g. `+experiment=seed_flowers`
or `model=tiny_cnn data.batch_size=64`) on a random batch of the data's shape, runs one training step with the
planner measuring (`cnnexp.functional.planner`), and prints, for every conv direction (forward, input gradient,
weight gradient) and pool, the implementation chosen with the timings of each candidate. The plans go to the
plan cache, so the training run that follows starts with them. Finally one step with the built-in choices and
one with the plan are timed side by side (medians of 3).

No lightning import, no run folder: planning a model takes a few seconds.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from cnnexp.cpu_memory import apply_cpu_settings

USAGE = __doc__


def compose(overrides: list[str]):
    """The composed config of `python -m cnnexp <overrides>` (without Hydra's run folder)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import cnnexp.conf  # noqa: F401  (resolvers)

    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def build_net(cfg) -> tuple[Any, tuple[int, ...]]:
    """The config's network (no LightningModule) and a batch shape `(N, C, H, W)`."""
    from hydra.utils import instantiate

    from cnnexp.train import fill_data_shape

    datamodule = instantiate(cfg.data)
    fill_data_shape(cfg, datamodule)
    net = instantiate(cfg.model.net)
    return net, (int(cfg.data.batch_size), *datamodule.input_shape)


def training_step(net, shape: tuple[int, ...], classes: int):
    """A closure running forward + cross-entropy + backward on one random batch of `shape`."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen) * 255
    y = torch.randint(0, classes, (shape[0],), generator=gen)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()

    return step


def median_step_ms(step, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def format_decisions(decisions) -> str:
    lines = [f"{'op':<28} {'geometry':<44} {'choice':<18} {'source':<9} timings (ms)"]
    for d in decisions:
        timings = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(d.timings_ms.items(), key=lambda kv: kv[1]))
        failed = "".join(f"; {name} failed" for name in d.failed)
        source = f"{d.source} (busy machine: not cached)" if d.busy else d.source
        lines.append(f"{d.op:<28} {d.key:<44} {d.choice:<18} {source:<9} {timings}{failed}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(USAGE.strip())
        return
    import torch

    from cnnexp.functional import kernels, planner

    cfg = compose(args)
    apply_cpu_settings(cfg)  # plan under the threads and the allocator the training run will use
    net, shape = build_net(cfg)
    step = training_step(net.train(), shape, int(cfg.model.net.num_classes))
    cpu = planner.machine_signature()["cpu"]
    print(f"planning {type(net).__name__} for a batch {tuple(shape)} on {cpu}, {torch.get_num_threads()} "
          f"thread(s); kernels: {kernels.build_id()}")
    built_in = planner.Planner(planner.default_cache_path(), {}, mode="estimate")
    measuring = planner.current()
    if measuring.mode != "measure":
        measuring = planner.Planner(measuring.path, measuring.signature, mode="measure")
    try:
        planner.reset(measuring)
        t0 = time.perf_counter()
        with measuring.recording() as decisions:
            step()
        planning_s = time.perf_counter() - t0
        print(format_decisions(decisions))
        print(f"plan cache: {measuring.path} ({planning_s:.1f} s to plan and run the step)")
        planner.reset(built_in)
        step()
        estimate_ms = median_step_ms(step)
        planner.reset(measuring)
        planned_ms = median_step_ms(step)
    finally:
        planner.reset(None)
    print(f"training step (forward + backward): built-in choices {estimate_ms:.1f} ms, planned {planned_ms:.1f} ms "
          f"(x{estimate_ms / planned_ms:.2f})")


if __name__ == "__main__":
    from cnnexp.cli import run_cli

    run_cli(main)
