"""The sweep report: `python -m cnnexp.report outputs/multirun/<dir>`.

Reads every run's saved Hydra config (`.hydra/overrides.yaml`, `.hydra/config.yaml`) and TensorBoard event
files, then writes `report.md` and `report.csv` (swept parameters against final and best metrics, sorted by the
optimized metric) and `val_acc.png` (every run's validation accuracy curve).

- `runs.py`: find the runs of a sweep and load their overrides, config and scalar curves;
- `table.py`: the rows, sorted, as markdown and CSV;
- `plot.py`: the curves as a PNG (matplotlib, Agg);
- `build.py`: `build_report(sweep_dir, ...)`, the three together; `__main__.py`: the command line.
"""

from cnnexp.report.build import Report, build_report

__all__ = ["Report", "build_report"]
