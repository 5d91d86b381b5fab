"""The block a sweep ends with: how many runs, the best one and its metric, and the commands to look further.

    sweep: 4 runs in outputs/multirun/2026-01-01_12-00-00-000000_123-ab12 (1 failed)
    best:  1_optimizer.lr=0.001  val/acc_best=0.9861
    study: digits_optuna, 24 trials: 15 complete, 8 pruned, 1 fail (best 0.9889, trial 17)
    report:      python -m cnnexp.report outputs/multirun/...
    tensorboard: tensorboard --logdir outputs/multirun/...
    dashboard:   optuna-dashboard sqlite:///outputs/optuna/digits.db

`SweepSummary` is a Hydra callback (conf/hydra/default.yaml) that prints it when any multirun ends (grid or
Optuna, any launcher). Plain text: no colour codes, whatever the terminal.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def _display(path: Path) -> str:
    """`path` relative to the working directory when inside it, quoted for a shell."""
    path = path.resolve()
    try:
        text = str(path.relative_to(Path.cwd()))
    except ValueError:
        text = str(path)
    return shlex.quote(text)


def study_line(sweep_dir: Path) -> tuple[str | None, str | None]:
    """The Optuna study line and the optuna-dashboard command, from `optimization_results.yaml` (if any)."""
    path = sweep_dir / "optimization_results.yaml"
    if not path.is_file():
        return None, None
    results = OmegaConf.to_container(OmegaConf.load(path))
    counts = results.get("trials") or {}
    total = sum(counts.values())
    states = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    best = f" (best {results['best_value']:.4f}, trial {results['best_trial']})" if "best_value" in results else ""
    line = f"{results.get('study_name')}, {total} trials: {states}{best}"
    storage = results.get("storage")
    dashboard = None
    if isinstance(storage, str):
        target = storage.removeprefix("journal:") if storage.startswith("journal:") else storage
        dashboard = f"optuna-dashboard {shlex.quote(target)}"
    return line, dashboard


def summary_lines(sweep_dir: Path, metric: str = "val/acc_best", maximize: bool = True) -> list[str]:
    """The summary block of a sweep folder (see the module docstring)."""
    from cnnexp.errors import DataError
    from cnnexp.report.runs import load_runs
    from cnnexp.report.table import metric_value

    shown = _display(sweep_dir)
    try:
        runs = load_runs(sweep_dir)
    except DataError:
        return [f"sweep: no runs in {shown}"]
    values = {run.name: metric_value(run, metric) for run in runs}
    scored = [run for run in runs if values[run.name] is not None]
    failed = sum(run.status == "failed" or values[run.name] is None for run in runs)
    lines = [f"sweep: {len(runs)} runs in {shown}" + (f" ({failed} failed or without {metric})" if failed else "")]
    if scored:
        best = (max if maximize else min)(scored, key=lambda run: values[run.name])
        lines.append(f"best:  {best.name}  {metric}={values[best.name]:.4f}")
    study, dashboard = study_line(sweep_dir)
    if study:
        lines.append(f"study: {study}")
    lines.append(f"report:      python -m cnnexp.report {shown}")
    lines.append(f"tensorboard: tensorboard --logdir {shown}")
    if dashboard:
        lines.append(f"dashboard:   {dashboard}")
    return lines


class SweepSummary(Callback):
    """Print the summary block (`summary_lines`) at the end of every multirun; never fails the sweep."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            metric = OmegaConf.select(config, "optimized_metric", default=None) or "val/acc_best"
            direction = str(OmegaConf.select(config, "hydra.sweeper.direction", default="maximize"))
            lines = summary_lines(sweep_dir, metric, maximize=("loss" not in metric) and direction != "minimize")
        except Exception as error:  # noqa: BLE001 - a summary must not turn a finished sweep into a failure
            log.warning("No sweep summary (%s: %s).", type(error).__name__, error)
            return
        print(os.linesep.join(["", *lines]), flush=True)
