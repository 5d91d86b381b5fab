"""The Hydra callbacks of cnnexp.sweepers on real JobReturn objects (no Hydra run needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from cnnexp.errors import TrainingError
from cnnexp.sweepers.callbacks import CreateSqliteStorageDir, FailNonFiniteJobs, non_finite, sqlite_path

CONFIG = OmegaConf.create({"optimized_metric": "val/acc_best", "hydra": {"runtime": {"output_dir": "/runs/7"}}})

# (returned value, should the job become FAILED)
RETURNS = [
    (math.nan, True),
    (math.inf, True),
    (-math.inf, True),
    (np.float32("nan"), True),
    (torch.tensor(float("nan")), True),
    (0.75, False),
    (np.float64(0.5), False),
    (torch.tensor(0.5), False),
    (0, False),
    (None, False),
    ("text", False),
    ([math.nan], False),  # multi-objective returns are left to the sweeper
]


def job(value, status=JobStatus.COMPLETED) -> JobReturn:
    ret = JobReturn(overrides=["optimizer.lr=1"], status=status)
    ret.return_value = value
    return ret


@pytest.mark.parametrize("value,fails", RETURNS)
def test_non_finite(value, fails):
    assert non_finite(value) is fails


@pytest.mark.parametrize("value,fails", RETURNS)
def test_fail_non_finite_jobs(value, fails):
    ret = job(value)
    FailNonFiniteJobs().on_job_end(config=CONFIG, job_return=ret)
    if not fails:
        assert ret.status == JobStatus.COMPLETED and ret.return_value is value
        return
    assert ret.status == JobStatus.FAILED
    with pytest.raises(TrainingError, match=r"val/acc_best=.*/runs/7"):
        ret.return_value  # what the Optuna sweeper reads: raising marks the trial FAIL


def test_an_already_failed_job_is_left_alone():
    error = RuntimeError("out of memory")
    ret = job(error, status=JobStatus.FAILED)
    FailNonFiniteJobs().on_job_end(config=CONFIG, job_return=ret)
    with pytest.raises(RuntimeError, match="out of memory"):
        ret.return_value


@pytest.mark.parametrize(
    "url,path",
    [
        ("sqlite:///outputs/optuna/digits.db", "outputs/optuna/digits.db"),
        ("sqlite:////abs/dir/x.db", "/abs/dir/x.db"),
        ("sqlite:///x.db?timeout=30", "x.db"),
        ("sqlite:///:memory:", None),
        ("postgresql://user@host/db", None),
        (None, None),
    ],
)
def test_sqlite_path(url, path):
    assert sqlite_path(url) == (None if path is None else Path(path))


def test_create_sqlite_storage_dir(tmp_path):
    config = OmegaConf.create({"hydra": {"sweeper": {"storage": f"sqlite:///{tmp_path}/a/b/study.db"}}})
    CreateSqliteStorageDir().on_multirun_start(config=config)
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "a" / "b" / "study.db").exists()
