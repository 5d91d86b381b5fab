"""The report table: one row per run, the swept parameters against final and best metrics, sorted.

Metric cells are the last logged value of the tag (`val/acc` is the final epoch's accuracy, `val/acc_best`
the best epoch's as the classifier logs it); `val/acc_best` falls back to the maximum of `val/acc` for runs
that did not log it. Runs that logged nothing (failed trials) keep empty cells and sort last. `epochs` is the
last epoch a run validated (short for a run stopped early or one that failed mid-way); `status` is what the
run's loggers recorded at its end ("success", "failed"; empty when unknown, e.g. a run that never started
logging or is still running).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnexp.report.runs import Run

METRICS = ("val/acc", "val/acc_best", "test/acc", "val/loss")


@dataclass
class Table:
    """A rectangular table; `rows[i][j]` belongs to `columns[j]` (None for a missing value)."""

    columns: list[str]
    rows: list[list[Any]]
    common: dict[str, str]  # the overrides that every run shared (not a column)


def split_overrides(runs: list[Run]) -> tuple[list[str], dict[str, str]]:
    """Swept keys (whose value differs between runs, in first-seen order) and the overrides all runs share.

    With a single run every override counts as swept, so the table still shows what the run was given.
    """
    keys = list(dict.fromkeys(k for run in runs for k in run.overrides))
    if len(runs) == 1:
        return keys, {}
    swept = [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]
    common = {k: runs[0].overrides[k] for k in keys if k not in swept}
    return swept, common


def metric_value(run: Run, tag: str) -> float | None:
    """The report's value of `tag` for a run (see the module docstring)."""
    value = run.final(tag)
    if value is None and tag.endswith("_best"):
        base = tag.removesuffix("_best")
        value = run.best(base, maximize="loss" not in base)
    return value


def epochs_trained(run: Run) -> int | None:
    """The last epoch (1-based) with a validation result, or None if the run never validated."""
    epochs = run.epochs("val/acc")
    return max(epochs) if epochs else None


def make_table(runs: list[Run], metric: str = "val/acc_best", maximize: bool = True) -> Table:
    """Build the table sorted by `metric` (best first; missing or NaN values last, then by run name)."""
    swept, common = split_overrides(runs)
    metrics = [metric, *(m for m in METRICS if m != metric)]

    def sort_key(run: Run) -> tuple[bool, float]:
        value = metric_value(run, metric)
        missing = value is None or math.isnan(value)
        return missing, 0.0 if missing else (-value if maximize else value)

    ordered = sorted(runs, key=sort_key)  # stable: ties keep job order
    rows = [
        [run.name, *(run.overrides.get(k) for k in swept), *(metric_value(run, m) for m in metrics), epochs_trained(run),
         run.status]
        for run in ordered
    ]
    return Table(["run", *swept, *metrics, "epochs", "status"], rows, common)


def short(text: str) -> str:
    """A long number as 4 significant digits (Optuna's `0.0027138893134451714` -> `0.002714`); other text as is."""
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:.4g}" if len(text) > 8 and math.isfinite(number) else text


def _cell(value: Any) -> str:
    """Metrics to 4 decimals, swept values through `short`."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return short(str(value)).replace("|", "\\|")


def to_markdown(table: Table) -> str:
    """A GitHub markdown table (floats to 4 decimals), preceded by the shared overrides if any."""
    lines = []
    if table.common:
        lines += ["Shared overrides: " + " ".join(f"`{k}={v}`" for k, v in table.common.items()), ""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def write_csv(table: Table, path: Path) -> None:
    """The table as CSV with full float precision; missing values are empty cells."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(table.columns)
        writer.writerows([["" if v is None else v for v in row] for row in table.rows])
