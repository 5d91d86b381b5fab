"""`python -m cnnexp [overrides]`: compose the Hydra config in cnnexp/conf and train.

Examples:
    python -m cnnexp                                   # the lecture CNN on load_digits
    python -m cnnexp +experiment=seed_flowers paths.data_dir=~/data
    python -m cnnexp -m model.conv_impl=custom,torch optimizer.lr=1e-3,3e-4
    python -m cnnexp --help                            # the config groups and their options
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import cnnexp.conf  # noqa: F401  (registers the config resolvers)
from cnnexp.cli import run_cli

log = logging.getLogger("cnnexp")


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _discard_unstarted_run_dir() -> None:
    """A run refused before it wrote anything leaves no folder (only Hydra's .hydra/ and log were there)."""
    from hydra.core.hydra_config import HydraConfig

    from cnnexp.run_folders import discard_unstarted_run_dir

    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        discard_unstarted_run_dir(hydra_cfg.runtime.output_dir, f"{hydra_cfg.job.name}.log")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Train, and return `cfg.optimized_metric` (what a hyperparameter sweeper maximises).

    A user error (`cnnexp.cli.user_error_message`) prints one `error: ... Fix: ...` line and exits with status 2
    from inside the job, so Hydra adds no "Error executing job" line; its traceback is in the run's log file.
    In a multirun (sweep), a failing job is logged to its own run folder and returns NaN, so the sweep goes on.
    """
    from cnnexp.cli import exit_with_error, user_error_message
    from cnnexp.train import train

    try:
        metrics = train(cfg)
    except Exception as error:
        message = user_error_message(error)
        if _is_multirun():
            from hydra.core.hydra_config import HydraConfig

            where = Path(HydraConfig.get().runtime.output_dir) / f"{HydraConfig.get().job.name}.log"
            log.error("This job failed (%s); the sweep goes on and records NaN.",
                      message or f"a bug; the traceback is in {where}")
            return math.nan
        if message is None:
            raise  # a bug: Hydra and run_cli show the traceback
        _discard_unstarted_run_dir()
        exit_with_error(message)
    name = cfg.get("optimized_metric")
    if not name:
        return math.nan
    if name not in metrics:
        log.warning("optimized_metric=%s was not logged (have: %s); returning NaN.", name, ", ".join(sorted(metrics)))
        return math.nan
    return metrics[name]


def refuse_experimental_rerun(argv: list[str]) -> None:
    """Hydra's `--experimental-rerun <run>/.hydra/config.pickle` unpickles a file (it could run code) and needs a
    pickle cnnexp does not write: point to `python -m cnnexp.rerun` instead."""
    from cnnexp.cli import exit_with_error

    if any(arg.startswith("--experimental-rerun") for arg in argv):
        exit_with_error("--experimental-rerun is not supported (it unpickles a file, and cnnexp saves no "
                        "config.pickle). Fix: python -m cnnexp.rerun outputs/runs/<run> [key=value ...]")


if __name__ == "__main__":
    refuse_experimental_rerun(sys.argv[1:])
    run_cli(main)
