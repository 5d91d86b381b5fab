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

import hydra
from omegaconf import DictConfig

import cnnexp.conf  # noqa: F401  (registers the config resolvers)
from cnnexp.cli import run_cli

log = logging.getLogger("cnnexp")


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Train, and return `cfg.optimized_metric` (what a hyperparameter sweeper maximises).

    In a multirun (sweep), a failing job is logged to its own run folder and returns NaN, so the sweep goes on.
    """
    from cnnexp.train import train

    try:
        metrics = train(cfg)
    except Exception:
        if not _is_multirun():
            raise
        log.error("This job failed (logged above); the sweep goes on and records NaN.")
        return math.nan
    name = cfg.get("optimized_metric")
    if not name:
        return math.nan
    if name not in metrics:
        log.warning("optimized_metric=%s was not logged (have: %s); returning NaN.", name, ", ".join(sorted(metrics)))
        return math.nan
    return metrics[name]


if __name__ == "__main__":
    run_cli(main)
