"""A Hydra Sweeper on Optuna's ask/tell API (Optuna >= 4): cnnexp's replacement for hydra-optuna-sweeper.

hydra-optuna-sweeper 1.3.0 pins optuna<3 (no JournalStorage, no optuna-dashboard, SQLAlchemy<2) and never
reports intermediate values, so no trial is ever pruned. This sweeper keeps its configuration and search-space
syntax (`cnnexp.sweepers.optuna_space`) and adds:

- pruning: each trial's job reports its per-epoch metric (`cnnexp.sweepers.pruning.OptunaPruning`) and stops
  when the study's pruner (median, Hyperband) says so; the trial is recorded as PRUNED;
- storages that several workers share with no server (`cnnexp.sweepers.optuna_storage`): sqlite for one
  machine, a journal file for many; study creation is race-free, and a second invocation resumes the study;
- failed trials (the job raised, or returned NaN) recorded as FAIL, and the search goes on up to
  `max_failure_rate`.

Hydra instantiates only sweepers defined in the `hydra_plugins` package: the class Hydra sees is
`hydra_plugins.cnnexp_sweepers.optuna_sweeper.CnnexpOptunaSweeper`, a thin subclass of `OptunaSweeper`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from cnnexp.sweepers.optuna_space import search_space
from cnnexp.sweepers.optuna_storage import (
    ENV_STORAGE, ENV_STUDY, ENV_TRIAL, PRUNED_ATTR, absolute_storage, create_or_load_study, open_storage,
)

log = logging.getLogger(__name__)


def quiet_optuna() -> None:
    """Optuna's messages through the root logger (Hydra's format, no colour codes); alembic's setup lines off."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    logging.getLogger("alembic").setLevel(logging.WARNING)


def job_value(job_return: Any) -> float:
    """The job's objective as a float; raises (the job's own error, or ValueError for NaN / not a number)."""
    value = float(job_return.return_value)  # a failed job re-raises its exception here
    if not math.isfinite(value):
        raise ValueError(f"the job returned {value} (it failed or diverged; see its run folder's log)")
    return value


class OptunaSweeper(Sweeper):
    """Sample trials with Optuna's ask/tell API and launch them through Hydra's launcher in batches of `n_jobs`.

    Args:
        sampler: an Optuna sampler (TPESampler, RandomSampler, ...), instantiated by Hydra.
        pruner: an Optuna pruner (MedianPruner, HyperbandPruner) or None (no pruning).
        direction: "maximize" | "minimize" (or a list of them for several objectives).
        storage: `sqlite:///path.db`, `journal:path.journal`, an RDB URL, or None (in memory).
        study_name: the study's name in the storage (the same name resumes it).
        n_trials: trials this invocation runs (a resumed study adds this many).
        n_jobs: trials launched together (a batch; > 1 needs a parallel launcher such as joblib).
        max_failure_rate: stop with an error when a batch has a larger fraction of failed trials.
        params: the search space, `{key: "choice(...)" | "interval(...)" | ...}` (see `optuna_space`).
    """

    def __init__(self, sampler: Any = None, pruner: Any = None, direction: Any = "maximize",
                 storage: str | None = None, study_name: str | None = None, n_trials: int = 20, n_jobs: int = 1,
                 max_failure_rate: float = 0.0, params: DictConfig | dict | None = None) -> None:
        self.sampler, self.pruner = sampler, pruner
        direction = OmegaConf.to_container(direction) if OmegaConf.is_config(direction) else direction
        self.directions = [str(d) for d in (direction if isinstance(direction, (list, tuple)) else [direction])]
        self.storage_url = absolute_storage(storage)
        self.study_name = study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = int(n_trials), max(1, int(n_jobs)), float(max_failure_rate)
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.study: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _trial_overrides(self, trial: Any, fixed: list[str]) -> list[str]:
        """The job's overrides: the sampled values, the fixed overrides, and where its trial lives."""
        env = {ENV_TRIAL: str(trial.number)}
        if self.storage_url:
            env.update({ENV_STORAGE: self.storage_url, ENV_STUDY: self.study.study_name})
        sampled = [f"{key}={value}" for key, value in trial.params.items()]
        return sampled + fixed + [f"++hydra.job.env_set.{k}='{v}'" for k, v in env.items()]

    def _tell(self, trial: Any, job_return: Any) -> bool:
        """Record one finished job in the study; True when the trial failed."""
        from optuna.trial import TrialState

        attrs = self.study._storage.get_trial(trial._trial_id).user_attrs
        if PRUNED_ATTR in attrs:
            self.study.tell(trial, state=TrialState.PRUNED)
            return False
        try:
            value = job_value(job_return) if len(self.directions) == 1 else [float(v) for v in job_return.return_value]
        except Exception as error:  # noqa: BLE001 - any failure of the job is a failed trial
            log.warning("Trial %d failed: %s", trial.number, error)
            self.study.tell(trial, state=TrialState.FAIL)
            return True
        self.study.tell(trial, value)
        return False

    def sweep(self, arguments: list[str]) -> None:
        """Run `n_trials` trials; write `optimization_results.yaml` into the sweep folder."""
        assert self.config is not None and self.launcher is not None
        quiet_optuna()
        space, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # what job folder names are made from
        storage = open_storage(self.storage_url)
        self.study = create_or_load_study(storage, self.study_name, self.directions, self.sampler, self.pruner)
        log.info("Study %s in %s: %d trials so far; running %d more, %d at a time.", self.study.study_name,
                 self.storage_url or "memory", len(self.study.trials), self.n_trials, self.n_jobs)
        job_idx, left = 0, self.n_trials
        while left > 0:
            trials = [self.study.ask(space) for _ in range(min(self.n_jobs, left))]
            returns = self.launcher.launch([self._trial_overrides(t, fixed) for t in trials], initial_job_idx=job_idx)
            failures = sum(self._tell(trial, ret) for trial, ret in zip(trials, returns))
            job_idx, left = job_idx + len(trials), left - len(trials)
            if failures / len(trials) > self.max_failure_rate:
                from cnnexp.errors import TrainingError

                raise TrainingError(f"{failures} of {len(trials)} trials failed, more than hydra.sweeper."
                                    f"max_failure_rate={self.max_failure_rate}; their logs are under {sweep_dir}. "
                                    "Fix: correct the failing settings, or raise max_failure_rate to go on.")
        self._save_results(sweep_dir)

    def _save_results(self, sweep_dir: Path) -> None:
        """`optimization_results.yaml`: the study's best trial (over every invocation) and its trial counts."""
        from optuna.trial import TrialState

        trials = self.study.trials
        counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
        results: dict[str, Any] = {"name": "optuna", "study_name": self.study.study_name,
                                   "storage": self.storage_url, "trials": counts}
        if len(self.directions) == 1 and counts["complete"]:
            best = self.study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info("Best of study %s: %s", self.study.study_name, results.get("best_value", "no complete trial"))
