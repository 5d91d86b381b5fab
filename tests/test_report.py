"""cnnexp.report on sweep folders made of real files: Hydra's .hydra/*.yaml and TensorBoard event files.

The fast tests write the event files with torch's SummaryWriter (what Lightning's TensorBoardLogger uses);
the slow test in tests/test_sweeps.py runs the report on a real `python -m cnnexp -m` sweep.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cnnexp.errors import DataError
from cnnexp.report import build_report
from cnnexp.report.runs import find_run_dirs, parse_overrides, read_scalars


def write_run(run_dir: Path, overrides: list[str], curves: dict[str, list[float]], config: dict | None = None) -> None:
    """A run folder as Hydra and Lightning leave it: .hydra/{overrides,config}.yaml and tensorboard/events.*

    `curves[tag][i]` is logged at step 10 * (i + 1), with Lightning's `epoch` scalar i alongside.
    """
    from torch.utils.tensorboard import SummaryWriter

    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config or {"optimized_metric": "val/acc_best"}))
    if not curves:
        return  # a failed job: config saved, nothing logged
    writer = SummaryWriter(str(run_dir / "tensorboard"))
    n = max(len(v) for v in curves.values())
    for i in range(n):
        writer.add_scalar("epoch", float(i), 10 * (i + 1))
        for tag, values in curves.items():
            if i < len(values):
                writer.add_scalar(tag, values[i], 10 * (i + 1))
    writer.close()


def curves_for(accs: list[float], test_acc: float) -> dict[str, list[float]]:
    best = [max(accs[: i + 1]) for i in range(len(accs))]
    return {"val/acc": accs, "val/acc_best": best, "val/loss": [1 - a for a in accs], "test/acc": [test_acc]}


# run folder -> (overrides, val/acc per epoch, test/acc); job 3 failed before logging anything
SWEEP = {
    "0": (["data=digits", "optimizer.lr=0.001", "model.conv_impl=custom"], [0.5, 0.7, 0.6], 0.65),
    "1": (["data=digits", "optimizer.lr=0.0003", "model.conv_impl=custom"], [0.4, 0.9, 0.8], 0.85),
    "2": (["data=digits", "optimizer.lr=0.001", "model.conv_impl=torch"], [0.3, 0.5, 0.55], 0.5),
    "3": (["data=digits", "optimizer.lr=0.0003", "model.conv_impl=torch"], None, None),
}


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "multirun" / "2026-01-01_00-00-00"
    for name, (overrides, accs, test_acc) in SWEEP.items():
        write_run(root / name, overrides, curves_for(accs, test_acc) if accs else {})
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_table_has_one_row_per_run_sorted_by_val_acc_best(sweep):
    report = build_report(sweep)
    rows = read_csv(report.csv_path)
    assert [r["run"] for r in rows] == ["1", "0", "2", "3"]  # best val/acc_best 0.9, 0.7, 0.55, failed last
    assert list(rows[0]) == ["run", "optimizer.lr", "model.conv_impl", "val/acc_best", "val/acc", "test/acc", "val/loss", "epochs", "status"]
    assert report.table.common == {"data": "digits"}
    for row in rows[:3]:
        _, accs, test_acc = SWEEP[row["run"]]
        assert float(row["val/acc"]) == pytest.approx(accs[-1])  # final
        assert float(row["val/acc_best"]) == pytest.approx(max(accs))
        assert float(row["test/acc"]) == pytest.approx(test_acc)
        assert float(row["val/loss"]) == pytest.approx(1 - accs[-1])
        assert int(row["epochs"]) == len(accs)
    assert rows[3]["val/acc"] == "" and rows[3]["epochs"] == "" and rows[3]["model.conv_impl"] == "torch"


def test_markdown_and_plot_are_written(sweep, tmp_path):
    from matplotlib.image import imread

    out = tmp_path / "report"
    report = build_report(sweep, out_dir=out)
    assert report.markdown_path.parent == out
    lines = [line for line in report.markdown.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(SWEEP)  # header, separator, one row per run
    assert lines[2].startswith("| 1 | 0.0003 | custom | 0.9000 |")
    assert "`data=digits`" in report.markdown_path.read_text()
    image = imread(report.plot_path)  # (H, W, 4): an 8x5 inch, 100 dpi plot, widened for the legend on the right
    assert report.plot_path.name == "val_acc.png" and image.ndim == 3
    assert 400 < image.shape[0] <= 520 and image.shape[1] > 800


@pytest.mark.parametrize(
    "metric,minimize,order",
    [
        ("val/loss", None, ["1", "0", "2", "3"]),  # a loss sorts smallest first by default: 0.2, 0.4, 0.45
        ("test/acc", None, ["1", "0", "2", "3"]),
        ("test/acc", True, ["2", "0", "1", "3"]),
        ("val/acc", None, ["1", "0", "2", "3"]),
    ],
)
def test_sort_metric_and_direction(sweep, metric, minimize, order):
    report = build_report(sweep, metric=metric, maximize=None if minimize is None else not minimize)
    assert [row[0] for row in report.table.rows] == order
    assert report.table.columns[3] == metric  # the sort metric comes first after the swept keys


def test_val_acc_best_falls_back_to_the_max_of_val_acc(tmp_path):
    write_run(tmp_path / "0", ["optimizer.lr=0.1"], {"val/acc": [0.2, 0.6, 0.4]})
    write_run(tmp_path / "1", ["optimizer.lr=0.2"], {"val/acc": [0.5, 0.5]})
    rows = read_csv(build_report(tmp_path).csv_path)
    assert [(r["run"], float(r["val/acc_best"])) for r in rows] == [("0", pytest.approx(0.6)), ("1", pytest.approx(0.5))]


def test_a_resumed_run_merges_event_files_and_later_points_win(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    write_run(tmp_path, ["seed=1"], {"val/acc": [0.1, 0.2]})  # steps 10, 20
    time.sleep(0.01)
    writer = SummaryWriter(str(tmp_path / "tensorboard"), filename_suffix=".resumed")
    writer.add_scalar("val/acc", 0.25, 20)
    writer.add_scalar("val/acc", 0.3, 30)
    writer.close()
    points = read_scalars(tmp_path)["val/acc"]
    assert [(s, pytest.approx(v)) for s, _, v in points] == [(10, 0.1), (20, 0.25), (30, 0.3)]
    assert build_report(tmp_path).table.rows[0][0] == tmp_path.name  # a single run folder is a one-row report


@pytest.mark.parametrize(
    "lines,expected",
    [
        (["a.b=1", "c=x,y"], {"a.b": "1", "c": "x,y"}),
        (["+hparams_search=digits_optuna", "++trainer.max_epochs=2"], {"hparams_search": "digits_optuna", "trainer.max_epochs": "2"}),
        (["~callbacks.early_stopping"], {"callbacks.early_stopping": "~"}),
        (["model.net.layers.0.filters=8"], {"model.net.layers.0.filters": "8"}),
    ],
)
def test_parse_overrides(lines, expected):
    assert parse_overrides(lines) == expected


def test_job_folders_in_numeric_order(tmp_path):
    for name in ["10", "2", "1"]:
        write_run(tmp_path / name, [f"seed={name}"], {})
    assert [d.name for d in find_run_dirs(tmp_path)] == ["1", "2", "10"]


@pytest.mark.parametrize("name,message", [("", "no runs found under"), ("missing", "is not a folder")])
def test_no_runs_is_a_clear_error(tmp_path, name, message):
    (tmp_path / "3").mkdir()  # a folder without .hydra is not a run
    with pytest.raises(DataError, match=message):
        build_report(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3"]  # nothing written, no folder created


def test_cli_prints_error_and_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cnnexp.report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no runs found") and "Traceback" not in proc.stderr


def test_cli_writes_the_report(sweep):
    proc = subprocess.run([sys.executable, "-m", "cnnexp.report", str(sweep)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| run | optimizer.lr | model.conv_impl | val/acc_best |" in proc.stdout
    assert all((sweep / name).exists() for name in ["report.md", "report.csv", "val_acc.png"])


def test_curves_use_epochs_when_logged(sweep):
    from cnnexp.report.plot import curve
    from cnnexp.report.runs import load_run

    run = load_run(sweep / "1", sweep)
    xs, ys, axis = curve(run, "val/acc")
    assert axis == "epoch" and xs == [1, 2, 3] and ys == pytest.approx(SWEEP["1"][1])
    del run.scalars["epoch"]
    assert curve(run, "val/acc")[0] == [10, 20, 30] and curve(run, "val/acc")[2] == "step"


def test_long_swept_numbers_are_shortened_in_markdown_only(tmp_path):
    lr = "0.0027138893134451714"  # how Optuna writes a sampled float into the overrides
    write_run(tmp_path / "0", [f"optimizer.lr={lr}", "data.batch_size=32"], {"val/acc": [0.5]})
    write_run(tmp_path / "1", ["optimizer.lr=0.01", "data.batch_size=64"], {"val/acc": [0.4]})
    report = build_report(tmp_path)
    assert "| 0 | 0.002714 | 32 | 0.5000 |" in report.markdown and "| 1 | 0.01 | 64 | 0.4000 |" in report.markdown
    assert read_csv(report.csv_path)[0]["optimizer.lr"] == lr


def test_epochs_column_ignores_the_test_phase(tmp_path):
    """Lightning logs test metrics after fit with `epoch` = max_epochs, one past the last trained epoch."""
    from torch.utils.tensorboard import SummaryWriter

    write_run(tmp_path, ["seed=1"], {"val/acc": [0.1, 0.2, 0.3]})  # epochs 0..2 at steps 10..30
    writer = SummaryWriter(str(tmp_path / "tensorboard"), filename_suffix=".test")
    writer.add_scalar("epoch", 3.0, 31)
    writer.add_scalar("test/acc", 0.25, 31)
    writer.close()
    table = build_report(tmp_path).table
    assert dict(zip(table.columns, table.rows[0]))["epochs"] == 3


def test_status_comes_from_the_hparams_session_end(tmp_path):
    """cnnexp's TensorBoardLogger ends a failed run with STATUS_FAILURE: the report says failed, not 0.0."""
    from torch.utils.tensorboard import SummaryWriter

    from cnnexp.lit.tensorboard_logger import session_end_summary

    for name, status in [("0", "success"), ("1", "failed")]:
        write_run(tmp_path / name, [f"optimizer.lr=0.{name}1"], {"val/acc": [0.5]} if status == "success" else {})
        writer = SummaryWriter(str(tmp_path / name / "tensorboard"), filename_suffix=".end")
        writer._get_file_writer().add_summary(session_end_summary(status))
        writer.close()
    rows = read_csv(build_report(tmp_path).csv_path)
    assert [(r["run"], r["status"], r["val/acc"]) for r in rows] == [("0", "success", "0.5"), ("1", "failed", "")]


def test_run_json_status_wins_and_covers_runs_without_logs(tmp_path):
    """A run that failed before its loggers started has only its run.json (provenance) to say so."""
    import json

    write_run(tmp_path / "0", ["seed=0"], {"val/acc": [0.5]})
    write_run(tmp_path / "1", ["seed=1"], {})
    (tmp_path / "1" / "run.json").write_text(json.dumps({"status": "failed", "exit_status": 2}))
    (tmp_path / "0" / "run.json").write_text(json.dumps({"status": "interrupted", "exit_status": 143}))
    rows = read_csv(build_report(tmp_path).csv_path)
    assert [(r["run"], r["status"]) for r in rows] == [("0", "interrupted"), ("1", "failed")]


def test_csv_logs_fill_a_run_without_event_files(tmp_path):
    """A `logger=csv` run: Lightning's CSVLogger metrics.csv (blank cells where a row lacks a metric)."""
    run = tmp_path / "0_optimizer.lr=0.1"
    write_run(run, ["optimizer.lr=0.1"], {})
    (run / "csv").mkdir()
    (run / "csv" / "metrics.csv").write_text(
        "epoch,step,train/loss,val/acc,val/acc_best,test/acc\n"
        "0,9,1.5,,,\n0,9,,0.4,0.4,\n1,19,1.0,,,\n1,19,,0.7,0.7,\n2,20,,,,0.65\n"
    )
    write_run(tmp_path / "10_optimizer.lr=0.2", ["optimizer.lr=0.2"], {"val/acc": [0.5]})
    report = build_report(tmp_path)
    cells = dict(zip(report.table.columns, report.table.rows[0]))
    assert cells["run"] == run.name and cells["val/acc_best"] == pytest.approx(0.7)
    assert cells["test/acc"] == pytest.approx(0.65) and cells["epochs"] == 2
    assert [d.name for d in find_run_dirs(tmp_path)] == [run.name, "10_optimizer.lr=0.2"]  # job-number order


def test_a_folder_of_sweeps_is_one_report(tmp_path):
    """A study resumed over several invocations: pass the folder above the sweep folders."""
    write_run(tmp_path / "search1" / "0_optimizer.lr=0.1", ["optimizer.lr=0.1"], {"val/acc": [0.5]})
    write_run(tmp_path / "search1" / "1_optimizer.lr=0.2", ["optimizer.lr=0.2"], {"val/acc": [0.7]})
    write_run(tmp_path / "search2" / "0_optimizer.lr=0.3", ["optimizer.lr=0.3"], {"val/acc": [0.6]})
    rows = read_csv(build_report(tmp_path).csv_path)
    assert [r["run"] for r in rows] == ["search1/1_optimizer.lr=0.2", "search2/0_optimizer.lr=0.3",
                                        "search1/0_optimizer.lr=0.1"]
