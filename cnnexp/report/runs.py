"""Find the runs of a sweep folder and load what each one saved: overrides, config and scalar curves.

A run is any folder with a `.hydra/overrides.yaml` (Hydra writes one per job); a sweep folder holds one run per
job (`0_optimizer.lr=0.001/`, ...; `0/`, `1/` before cnnexp named them). The scalars come from every TensorBoard
event file under the run folder, completed by its CSV logs and its MLflow run (`cnnexp.report.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from cnnexp.errors import DataError
from cnnexp.report.sources import Point, mlflow_uri, read_csv_logs, read_mlflow, read_tensorboard, run_json_status
from cnnexp.sweepers.naming import override_key


@dataclass
class Run:
    """One finished (or failed) job of a sweep.

    Attributes:
        name: the run folder relative to the sweep folder (the job number for Hydra sweeps).
        path: the run folder.
        overrides: the command-line overrides of this job, `{"optimizer.lr": "0.001", "model": "tiny_cnn"}`.
        config: the composed config the job ran with (a plain dict; empty if `.hydra/config.yaml` is missing).
        scalars: every scalar tag's points sorted by step (a resumed run's later points win on equal steps).
        status: "success" or "failed" as its loggers recorded it (TensorBoard's HParams session end, MLflow's
            run status), None when unknown.
    """

    name: str
    path: Path
    overrides: dict[str, str]
    config: dict[str, Any] = field(default_factory=dict)
    scalars: dict[str, list[Point]] = field(default_factory=dict)
    status: str | None = None

    def final(self, tag: str) -> float | None:
        """The last logged value of `tag` (by step), or None if the run never logged it."""
        points = self.scalars.get(tag)
        return points[-1][2] if points else None

    def epochs(self, tag: str) -> list[int] | None:
        """The 1-based epoch of each point of `tag`, from Lightning's `epoch` scalar logged at the same steps;
        None when some step has no `epoch` value (or the tag was never logged)."""
        points = self.scalars.get(tag)
        at_step = {step: value for step, _, value in self.scalars.get("epoch", [])}
        if not points or any(step not in at_step for step, _, _ in points):
            return None
        return [int(at_step[step]) + 1 for step, _, _ in points]

    def best(self, tag: str, maximize: bool = True) -> float | None:
        """The largest (or smallest) logged value of `tag`, or None."""
        values = [v for _, _, v in self.scalars.get(tag, [])]
        if not values:
            return None
        return max(values) if maximize else min(values)


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """`["optimizer.lr=0.001", "+hparams_search=x", "~callbacks.a"]` -> `{"optimizer.lr": "0.001", ...}`.

    A leading `+`, `++` or `~` is dropped from the key; a deletion (`~key`) maps to `"~"`.
    """
    return dict(map(override_key, lines))


def _run_sort_key(name: str) -> tuple:
    """Job folders in job-number order (`2_lr=0.1` before `10_lr=0.2`, `2` before `10`), others by name after."""
    parts = Path(name).parts
    numbers = [p.split("_", 1)[0] for p in parts]
    return tuple((0, int(n), p) if n.isdigit() else (1, 0, p) for n, p in zip(numbers, parts))


def find_run_dirs(sweep_dir: Path) -> list[Path]:
    """Every folder under `sweep_dir` (itself included) that holds `.hydra/overrides.yaml`, in job order.

    Raises:
        DataError: the folder does not exist or holds no runs.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise DataError(f"{sweep_dir} is not a folder: pass a sweep folder such as outputs/multirun/<time>")
    dirs = sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")})
    if not dirs:
        raise DataError(
            f"no runs found under {sweep_dir}: expected run folders with a .hydra/overrides.yaml inside, "
            "as written by `python -m cnnexp -m ...` into outputs/multirun/<time>"
        )
    return sorted(dirs, key=lambda d: _run_sort_key(d.relative_to(sweep_dir).as_posix()))


def read_scalars(run_dir: Path) -> dict[str, list[Point]]:
    """All scalars of every TensorBoard event file under `run_dir`, merged and sorted by step.

    Shape:
        returns `{tag: [(step, wall_time, value), ...]}`; for a step logged twice (a resumed run) the
        point written last (largest wall time) is kept.
    """
    return read_tensorboard(run_dir)[0]


def read_run_data(run_dir: Path) -> tuple[dict[str, list[Point]], str | None]:
    """The run's curves and status from TensorBoard, then the tags it lacks from CSV logs and its MLflow run."""
    scalars, status = read_tensorboard(run_dir)
    resolved = run_dir / "config_resolved.yaml"
    config = OmegaConf.to_container(OmegaConf.load(resolved)) if resolved.is_file() else {}
    uri = mlflow_uri(config if isinstance(config, dict) else {})
    readers = [lambda: read_csv_logs(run_dir)] + ([lambda: read_mlflow(run_dir, uri)] if uri else [])
    for read in readers:
        more, more_status = read()
        for tag, points in more.items():
            scalars.setdefault(tag, points)
        status = status or more_status
    return scalars, run_json_status(run_dir) or status


def load_run(run_dir: Path, sweep_dir: Path) -> Run:
    """Read one run folder: `.hydra/overrides.yaml`, `.hydra/config.yaml` and its event files."""
    hydra_dir = run_dir / ".hydra"
    overrides = OmegaConf.to_container(OmegaConf.load(hydra_dir / "overrides.yaml")) or []
    config_path = hydra_dir / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False) if config_path.exists() else {}
    name = run_dir.relative_to(sweep_dir).as_posix() if run_dir != sweep_dir else run_dir.name
    scalars, status = read_run_data(run_dir)
    return Run(name, run_dir, parse_overrides(list(overrides)), dict(config or {}), scalars, status)


def load_runs(sweep_dir: Path) -> list[Run]:
    """Every run of a sweep folder, in job order (see `find_run_dirs`)."""
    sweep_dir = Path(sweep_dir)
    return [load_run(d, sweep_dir) for d in find_run_dirs(sweep_dir)]
