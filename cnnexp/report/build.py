"""`build_report`: load a sweep's runs, write the table (markdown, CSV) and the curve plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnexp.report.plot import plot_curves
from cnnexp.report.runs import Run, load_runs
from cnnexp.report.table import Table, make_table, short, split_overrides, to_markdown, write_csv


@dataclass
class Report:
    """What `build_report` made: the loaded runs, the sorted table, its markdown, and the files written."""

    runs: list[Run]
    table: Table
    markdown: str
    markdown_path: Path
    csv_path: Path
    plot_path: Path


def optimized_metric(runs: list[Run], default: str = "val/acc_best") -> str:
    """The `optimized_metric` the runs were configured with (the first run that has one), else `default`."""
    for run in runs:
        metric = run.config.get("optimized_metric")
        if isinstance(metric, str) and metric:
            return metric
    return default


def build_report(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    metric: str | None = None,
    maximize: bool | None = None,
    curve_tag: str = "val/acc",
) -> Report:
    """Write `report.md`, `report.csv` and `<curve_tag>.png` (e.g. `val_acc.png`) for a sweep folder.

    Args:
        sweep_dir: a sweep folder (`outputs/multirun/<time>`) or a single run folder.
        out_dir: where to write the files; default `sweep_dir`.
        metric: the column to sort by; default the runs' `optimized_metric` (`val/acc_best`).
        maximize: sort the largest first; default True unless the metric's name contains "loss".
        curve_tag: the scalar drawn for every run.

    Raises:
        DataError: `sweep_dir` is missing or holds no runs.
    """
    sweep_dir = Path(sweep_dir)
    runs = load_runs(sweep_dir)  # first: a mistyped folder must not be created below
    out = Path(out_dir) if out_dir is not None else sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    metric = metric or optimized_metric(runs)
    maximize = ("loss" not in metric) if maximize is None else maximize
    table = make_table(runs, metric, maximize)
    markdown = to_markdown(table)
    paths = out / "report.md", out / "report.csv", out / f"{curve_tag.replace('/', '_')}.png"
    paths[0].write_text(f"# Sweep report: {sweep_dir}\n\nSorted by `{metric}` ({'max' if maximize else 'min'} first).\n\n{markdown}")
    write_csv(table, paths[1])
    swept, _ = split_overrides(runs)
    labels = {
        run.name: " ".join([f"{run.name}:", *(f"{k.rsplit('.', 1)[-1]}={short(str(run.overrides.get(k)))}" for k in swept)])
        for run in runs
    }
    plot_curves(runs, curve_tag, paths[2], labels)
    return Report(runs, table, markdown, *paths)
