"""Hydra callbacks for hyperparameter searches: failed trials are recorded as failed, and the search goes on.

hydra-optuna-sweeper 1.3.0 (with optuna 2.10) handles a job that *raised* well: the trial is told FAIL and,
with `max_failure_rate: 1.0`, the search continues. A job that *returns* NaN (what `python -m cnnexp` returns
for a failed job in a multirun, so that grid sweeps go on) instead crashes the whole search: `study.tell`
rejects the NaN with a ValueError, and the sweeper's fallback `study.tell(state=FAIL, values=[nan])` raises
again because a failed trial cannot carry values, leaving the trial RUNNING in the storage.
`FailNonFiniteJobs` turns such a return into a failed job before the sweeper sees it.
"""

from __future__ import annotations

import logging
import math
import numbers
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cnnexp.errors import TrainingError

log = logging.getLogger(__name__)


def non_finite(value: Any) -> bool:
    """True for a real number (Python, numpy or 0-d tensor) that is NaN or infinite."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    return isinstance(value, numbers.Real) and not math.isfinite(value)


class FailNonFiniteJobs(Callback):
    """Mark a job that returned NaN or +-inf as FAILED with a `TrainingError` naming its run folder.

    The sweeper then records the trial as failed (optuna state FAIL) and, with `max_failure_rate: 1.0`,
    samples the next one. Only attach it to searches: Hydra's basic (grid) sweeper stops at a failed job.
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.COMPLETED or not non_finite(job_return._return_value):
            return
        metric = OmegaConf.select(config, "optimized_metric", default="the optimized metric")
        run_dir = OmegaConf.select(config, "hydra.runtime.output_dir", default="its run folder")
        job_return.status = JobStatus.FAILED
        job_return.return_value = TrainingError(
            f"the job returned {metric}={job_return._return_value} (it failed or diverged); "
            f"its log is in {run_dir}. The trial is recorded as failed."
        )
        log.warning("%s", job_return._return_value)


def sqlite_path(url: Any) -> Path | None:
    """The database file of a `sqlite:///<path>` URL (relative to the working directory), else None."""
    if not isinstance(url, str) or not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


class CreateSqliteStorageDir(Callback):
    """Create the folder of `hydra.sweeper.storage` when it is a sqlite file (sqlite does not create folders)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        path = sqlite_path(OmegaConf.select(config, "hydra.sweeper.storage", default=None))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
