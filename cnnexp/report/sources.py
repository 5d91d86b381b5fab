"""Where a run's curves and status come from: TensorBoard event files, Lightning's CSV logs, an MLflow store.

Each reader returns `({tag: [(step, wall_time, value), ...]}, status)` with points sorted by step, and status
"success", "failed" or None (unknown: still running, or a logger that records none). The report merges them:
TensorBoard first, then CSV and MLflow fill the tags TensorBoard did not log (a `logger=csv` run). The run's
own `run.json` status, when there is one, wins over the loggers'.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

Point = tuple[int, float, float]  # (step, wall_time, value) of one logged scalar
Curves = dict[str, list[Point]]

_SIZES = {"scalars": 0, "images": 1, "histograms": 1, "tensors": 1, "audio": 1, "compressedHistograms": 1}


def _hparams_status(accumulator: Any) -> str | None:
    """The session-end status the HParams plugin recorded in one event file, if any."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    try:
        content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME).get(metadata.SESSION_END_INFO_TAG)
    except KeyError:  # no hparams data in this file
        return None
    if content is None:
        return None
    status = plugin_data_pb2.HParamsPluginData.FromString(content).session_end_info.status
    return {api_pb2.STATUS_SUCCESS: "success", api_pb2.STATUS_FAILURE: "failed"}.get(status)


def read_tensorboard(run_dir: Path) -> tuple[Curves, str | None]:
    """All scalars of every TensorBoard event file under `run_dir`, merged, and the HParams session status.

    For a step logged twice (a resumed run) the point written last (largest wall time) is kept; the status of
    the newest event file that has one wins ("failed" then a resumed "success" reads "success").
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    latest: dict[str, dict[int, tuple[float, float]]] = {}
    status = None
    for path in sorted(Path(run_dir).rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        acc = EventAccumulator(str(path), size_guidance=_SIZES)
        acc.Reload()
        status = _hparams_status(acc) or status
        for tag in acc.Tags()["scalars"]:
            steps = latest.setdefault(tag, {})
            for event in acc.Scalars(tag):
                if event.step not in steps or event.wall_time >= steps[event.step][0]:
                    steps[event.step] = (event.wall_time, float(event.value))
    return {tag: [(s, w, v) for s, (w, v) in sorted(points.items())] for tag, points in latest.items()}, status


def read_csv_logs(run_dir: Path) -> tuple[Curves, str | None]:
    """The scalars of every Lightning CSVLogger `metrics.csv` under `run_dir` (columns `epoch`, `step`, tags)."""
    curves: dict[str, dict[int, float]] = {}
    for path in sorted(Path(run_dir).rglob("metrics.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    step = int(float(row.get("step") or "nan"))
                except ValueError:
                    continue
                for tag, text in row.items():
                    if tag != "step" and text not in (None, ""):
                        curves.setdefault(tag, {})[step] = float(text)
    return {tag: [(s, 0.0, v) for s, v in sorted(points.items())] for tag, points in curves.items()}, None


def run_json_status(run_dir: Path) -> str | None:
    """The `status` the run wrote into its `run.json` (provenance: success, failed, interrupted), or None.

    It is the most direct record: it also covers runs that failed before any logger started.
    """
    import json

    path = Path(run_dir) / "run.json"
    try:
        status = json.loads(path.read_text()).get("status") if path.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return status if status in ("success", "failed", "interrupted") else None


def mlflow_uri(config: dict[str, Any]) -> str | None:
    """The tracking URI of the run's `logger.mlflow` (from its resolved config), or None."""
    mlflow = (config.get("logger") or {}).get("mlflow") if isinstance(config.get("logger"), dict) else None
    uri = mlflow.get("tracking_uri") if isinstance(mlflow, dict) else None
    return uri if isinstance(uri, str) and "${" not in uri else None


def read_mlflow(run_dir: Path, tracking_uri: str) -> tuple[Curves, str | None]:
    """The metric histories and status of the MLflow run tagged `cnnexp.run_dir=<run_dir>` (conf/logger/mlflow).

    Returns empty curves and None when mlflow is not installed or no such run exists.
    """
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        return {}, None
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`cnnexp.run_dir` = '{Path(run_dir).resolve()}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not found:
        return {}, None
    run = found[0]
    curves = {}
    for key in run.data.metrics:
        history = client.get_metric_history(run.info.run_id, key)
        curves[key] = sorted((m.step, m.timestamp / 1000.0, float(m.value)) for m in history if math.isfinite(m.value))
    status = {"FINISHED": "success", "FAILED": "failed", "KILLED": "failed"}.get(run.info.status)
    return curves, status
