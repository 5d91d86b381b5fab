"""`OptunaPruning`: report a metric to the job's Optuna trial after every validation and stop a hopeless trial.

cnnexp's Optuna sweeper launches each trial with `hydra.job.env_set` holding the study's storage, its name and
the trial number (`ENV_STORAGE`, `ENV_STUDY`, `ENV_TRIAL`, in `optuna_storage`): the job process, whichever launcher started it
(in-process, joblib, submitit, SLURM), reaches the trial through the storage. After each validation epoch the
callback calls `trial.report(metric, epoch)`; when the study's pruner (median, Hyperband, ...) says the trial
should stop, it records `pruned_at_epoch` on the trial and stops training at the end of that epoch (no
exception: the run ends normally, tests its best checkpoint and keeps its logs), and the sweeper tells Optuna
the trial was PRUNED. Outside such a trial (no environment variables) the callback does nothing.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from lightning.pytorch.callbacks import Callback

from cnnexp.sweepers.optuna_storage import ENV_STORAGE, ENV_STUDY, ENV_TRIAL, PRUNED_ATTR, open_storage

log = logging.getLogger(__name__)



def trial_from_env(pruner: Any = None) -> Any:
    """The running Optuna trial this job belongs to (`optuna.trial.Trial`), or None outside a search.

    Args:
        pruner: the study's pruner (Optuna keeps none in the storage: each process passes its own; None means
            Optuna's default, MedianPruner, as for the sweeper).
    """
    storage_url, study_name, number = (os.environ.get(k) for k in (ENV_STORAGE, ENV_STUDY, ENV_TRIAL))
    if not (storage_url and study_name and number):
        return None
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url), pruner=pruner)
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(number))
    return optuna.trial.Trial(study, trial_id)


class OptunaPruning(Callback):
    """Report `monitor` to the Optuna trial after each validation; stop the run when the pruner says so.

    Args:
        monitor: the logged metric the study optimises per epoch (e.g. `val/acc`).
        pruner: the sweeper's pruner (the configs pass `${hydra:sweeper.pruner}`); None: Optuna's default.
    """

    def __init__(self, monitor: str = "val/acc", pruner: Any = None) -> None:
        self.monitor, self.pruner = monitor, pruner
        self._trial: Any = None
        self._looked_up = False

    def _get_trial(self) -> Any:
        if not self._looked_up:
            self._looked_up = True
            self._trial = trial_from_env(self.pruner)
        return self._trial

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        trial = self._get_trial()
        value = trainer.callback_metrics.get(self.monitor)
        if trial is None or value is None or not math.isfinite(float(value)):
            return
        epoch = trainer.current_epoch
        trial.report(float(value), step=epoch)
        if trial.should_prune():
            trial.set_user_attr(PRUNED_ATTR, epoch)
            log.info("Optuna trial %d pruned after epoch %d (%s=%.4f).", trial.number, epoch + 1, self.monitor, value)
            trainer.should_stop = True
