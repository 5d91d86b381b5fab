"""`logger=mlflow` and `logger=many`: a real run's MLflow record read back with MLflow's own client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

TINY = ["model=tiny_cnn", "debug=limit", "trainer.max_epochs=2", "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "trainer.accelerator=cpu", "task_name=mlflow_test"]


def test_logger_many_composes_tensorboard_csv_and_mlflow(tmp_path):
    from hydra import compose, initialize_config_module

    import cnnexp.conf  # noqa: F401

    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["logger=many"])
    assert sorted(cfg.logger) == ["csv", "mlflow", "tensorboard"]
    assert cfg.logger.mlflow._target_ == "lightning.pytorch.loggers.MLFlowLogger"


@pytest.mark.slow
def test_an_mlflow_run_reads_back_and_the_report_uses_it(tmp_path):
    from mlflow.tracking import MlflowClient

    from cnnexp.report import build_report

    proc = subprocess.run([sys.executable, "-m", "cnnexp", "logger=mlflow", *TINY], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next((tmp_path / "outputs" / "runs").iterdir())
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("mlflow_test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert Path(run.data.tags["cnnexp.run_dir"]) == run_dir
    assert run.data.params["model"] == "tiny_cnn" and len(run.data.params) <= 30  # the concise hparams
    best = client.get_metric_history(run.info.run_id, "val/acc_best")
    assert len(best) == 2  # one per epoch: no placeholder
    assert not (run_dir / "tensorboard").exists() and not (run_dir / "csv").exists()

    report = build_report(run_dir, out_dir=tmp_path / "report")  # no event files, no CSV: read from MLflow
    cells = dict(zip(report.table.columns, report.table.rows[0]))
    assert cells["val/acc_best"] == pytest.approx(best[-1].value) and cells["status"] == "success"
    assert cells["test/acc"] == pytest.approx(run.data.metrics["test/acc"])
