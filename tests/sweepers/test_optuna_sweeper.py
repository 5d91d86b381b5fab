"""cnnexp's Optuna sweeper telling the study how each job ended (no Hydra run: real JobReturns, a real study)."""

from __future__ import annotations

import math

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from cnnexp.errors import ShapeError
from cnnexp.sweepers.optuna_storage import PRUNED_ATTR
from hydra_plugins.cnnexp_sweepers.optuna_sweeper import CnnexpOptunaSweeper


def job(value=None, error=None) -> JobReturn:
    ret = JobReturn(overrides=["optimizer.lr=0.1"], status=JobStatus.FAILED if error else JobStatus.COMPLETED)
    ret.return_value = error if error else value
    return ret


@pytest.mark.parametrize(
    "ret,pruned,state",
    [
        (job(0.9), False, TrialState.COMPLETE),
        (job(math.nan), False, TrialState.FAIL),          # what python -m cnnexp returns for a failed multirun job
        (job(error=ShapeError("kernel 20 > image 8")), False, TrialState.FAIL),
        (job(0.4), True, TrialState.PRUNED),              # the job's OptunaPruning stopped it
    ],
)
def test_each_job_outcome_is_recorded(tmp_path, ret, pruned, state):
    sweeper = CnnexpOptunaSweeper(storage=f"sqlite:///{tmp_path}/s.db", study_name="s")
    sweeper.study = optuna.create_study(storage=sweeper.storage_url, study_name="s", direction="maximize")
    trial = sweeper.study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.report(0.4, step=0)
    if pruned:
        trial.set_user_attr(PRUNED_ATTR, 0)
    failed = sweeper._tell(trial, ret)
    (frozen,) = sweeper.study.trials
    assert frozen.state == state and failed is (state == TrialState.FAIL)
    if state == TrialState.COMPLETE:
        assert frozen.value == 0.9


def test_trial_overrides_tell_the_job_where_its_trial_lives(tmp_path):
    sweeper = CnnexpOptunaSweeper(storage=f"sqlite:///{tmp_path}/s.db", study_name="s")
    sweeper.study = optuna.create_study(storage=sweeper.storage_url, study_name="s")
    trial = sweeper.study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(0.1, 0.2)})
    overrides = sweeper._trial_overrides(trial, ["seed=7"])
    assert overrides[0].startswith("optimizer.lr=0.1") and overrides[1] == "seed=7"
    assert f"++hydra.job.env_set.CNNEXP_OPTUNA_STORAGE='sqlite:///{tmp_path}/s.db'" in overrides
    assert "++hydra.job.env_set.CNNEXP_OPTUNA_TRIAL='0'" in overrides
