"""Provenance: `run.json` in every run folder says how the run was made, on what, and how it ended.

Written at the start (status "running") and rewritten at the end, atomically (`cnnexp.atomic_write`):

    {"command": "python -m cnnexp model=tiny_cnn", "argv": [...], "cwd": "...",
     "git": {"commit": "5f82afa...", "dirty": false} | null (not run from a checkout),
     "versions": {"cnnexp", "torch", "lightning", "hydra", "python"},
     "machine": {"cpu", "gpu", "torch_threads", "hostname", "platform"},
     "seed": the seed the run used (also when the config said null), "tags": [...], "rerun_of": run folder | null,
     "start": ISO time, "end": ISO time | null, "status": running | success | failed | interrupted,
     "exit_status": 0 | 1 | 2 | 143 | null, "metrics": {name: value}}

The same table goes to TensorBoard's Text tab (`provenance`); `tags` also go to the hparams.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from cnnexp.run_folders import RUN_INFO

RERUN_ENV = "CNNEXP_RERUN_OF"  # set by `python -m cnnexp.rerun` to the original run folder


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_state(folder: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """`{"commit", "dirty"}` of the checkout cnnexp runs from (None when it is not a git checkout or git is absent)."""
    root = Path(folder) if folder is not None else Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else `platform.processor()`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "gpu": gpu, "torch_threads": torch.get_num_threads(),
            "hostname": socket.gethostname(), "platform": platform.platform()}


def collect(cfg: Any, seed: int | None = None, argv: list[str] | None = None) -> dict[str, Any]:
    """The provenance of a run that starts now (see the module docstring)."""
    from omegaconf import OmegaConf

    argv = list(sys.argv if argv is None else argv)
    command = ["python", "-m", "cnnexp", *argv[1:]] if argv and argv[0].endswith("__main__.py") else argv
    tags = OmegaConf.select(cfg, "tags", default=None)
    return {
        "command": shlex.join(command),
        "argv": argv,
        "cwd": os.getcwd(),
        "git": git_state(),
        "versions": {"cnnexp": _version("cnnexp"), "torch": _version("torch"), "lightning": _version("lightning"),
                     "hydra": _version("hydra-core"), "python": platform.python_version()},
        "machine": machine(),
        "seed": seed,
        "tags": list(tags) if tags is not None else [],
        "rerun_of": os.environ.get(RERUN_ENV) or None,
        "start": _now(),
        "end": None,
        "status": "running",
        "exit_status": None,
        "metrics": {},
    }


def finish(info: dict[str, Any], status: str, exit_status: int, metrics: dict[str, float]) -> dict[str, Any]:
    """`info` with the end time, the status and the final metrics."""
    return {**info, "end": _now(), "status": status, "exit_status": exit_status,
            "metrics": {k: (v if v == v else None) for k, v in metrics.items()}}  # NaN -> null (valid JSON)


def write(run_dir: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Write `<run_dir>/run.json` atomically."""
    from cnnexp.atomic_write import atomic_write_text

    return atomic_write_text(Path(run_dir) / RUN_INFO, json.dumps(info, indent=2, default=str) + "\n")


def read(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A run folder's `run.json`, or None (older runs have none)."""
    path = Path(run_dir) / RUN_INFO
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def as_markdown(info: dict[str, Any]) -> str:
    """A two-column table for TensorBoard's Text tab."""
    rows = [("command", f"`{info['command']}`"), ("git", json.dumps(info["git"])), ("tags", ", ".join(info["tags"])),
            ("seed", str(info["seed"])), ("start", info["start"]), ("rerun of", str(info["rerun_of"]))]
    rows += [(k, str(v)) for k, v in info["versions"].items()]
    rows += [(k, str(v)) for k, v in info["machine"].items()]
    return "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def log_to_tensorboard(info: dict[str, Any], loggers: list[Any]) -> None:
    """Add the provenance table to every TensorBoard logger's Text tab."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text("provenance", as_markdown(info), global_step=0)
