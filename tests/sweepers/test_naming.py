"""Sweep job folder names from the swept values, and the summary block a sweep ends with."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from cnnexp.sweepers.naming import job_dir, job_name, safe_name, sweep_keys, swept_keys


def test_sweep_keys_are_the_overrides_that_sweep():
    overrides = ["optimizer.lr=1e-3,3e-2", "model=tiny_cnn", "+x=choice(1,2)", "seed=range(3)", "debug=limit"]
    assert sweep_keys(overrides) == ["optimizer.lr", "x", "seed"]


@pytest.mark.parametrize(
    "overrides,keys,name",
    [
        (["optimizer.lr=0.001", "model=tiny_cnn"], ["optimizer.lr"], "optimizer.lr=0.001"),
        (["optimizer.lr=0.0027138893134451714", "data.batch_size=64"], [], "optimizer.lr=0.002714,data.batch_size=64"),
        (["callbacks=[default,tensorboard_pictures]"], ["callbacks"], "callbacks=_default,tensorboard_pictures"),
        (["data.root=/tmp/a b/c"], [], "data.root=_tmp_a_b_c"),
        (["hydra.job.env_set.X=1"], [], ""),
    ],
)
def test_job_name(overrides, keys, name):
    assert job_name(overrides, keys) == name


def test_safe_name_is_bounded_and_never_hidden():
    assert len(safe_name("k=" + "9" * 500)) == 100
    assert safe_name("..x") == "x" and safe_name("///") == "job"


def test_job_dir_reads_the_swept_keys_of_the_sweep(tmp_path):
    master = {"hydra": {"overrides": {"task": ["optimizer.lr=1e-3,3e-2", "model=tiny_cnn"]}}}
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(master))
    job = OmegaConf.create({"hydra": {"job": {"num": 3}, "sweep": {"dir": str(tmp_path)}, "sweeper": {},
                                      "overrides": {"task": ["optimizer.lr=0.03", "model=tiny_cnn"]}}})
    assert job_dir(_root_=job) == "3_optimizer.lr=0.03"
    job.hydra.sweeper = {"params": {"model.dropout": "interval(0, 0.5)"}}  # an Optuna search space counts too
    job.hydra.overrides.task.append("model.dropout=0.25")
    assert swept_keys(job.hydra) == ["model.dropout", "optimizer.lr"]
    assert job_dir(_root_=job) == "3_optimizer.lr=0.03,model.dropout=0.25"


def test_summary_names_the_best_run_and_the_commands(tmp_path, monkeypatch):
    from cnnexp.sweepers.summary import summary_lines
    from tests.test_report import curves_for, write_run

    monkeypatch.chdir(tmp_path)
    sweep = Path("multirun") / "s"
    write_run(sweep / "0_optimizer.lr=0.1", ["optimizer.lr=0.1"], curves_for([0.5, 0.6], 0.55))
    write_run(sweep / "1_optimizer.lr=0.01", ["optimizer.lr=0.01"], curves_for([0.7, 0.8], 0.75))
    write_run(sweep / "2_optimizer.lr=9", ["optimizer.lr=9"], {})
    (sweep / "optimization_results.yaml").write_text(yaml.safe_dump({
        "study_name": "st", "storage": "sqlite:///outputs/optuna/st.db", "best_value": 0.8, "best_trial": 1,
        "trials": {"complete": 2, "pruned": 0, "fail": 1}}))
    lines = summary_lines(sweep)
    assert lines == [
        "sweep: 3 runs in multirun/s (1 failed or without val/acc_best)",
        "best:  1_optimizer.lr=0.01  val/acc_best=0.8000",
        "study: st, 3 trials: 2 complete, 1 fail (best 0.8000, trial 1)",
        "report:      python -m cnnexp.report multirun/s",
        "tensorboard: tensorboard --logdir multirun/s",
        "dashboard:   optuna-dashboard sqlite:///outputs/optuna/st.db",
    ]
    assert all("\x1b" not in line for line in lines)
