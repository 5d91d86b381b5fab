"""Run folders: the one place that knows what a run folder looks like and which run folder a path belongs to.

A run folder (`outputs/runs/<date_time>_<pid>-<hex>/`) holds `.hydra/` (the composed config and the overrides),
`config_resolved.yaml`, `run.json` (provenance), `train.log`, `checkpoints/` and the loggers' folders.
"""

from __future__ import annotations

import os
from pathlib import Path

CKPT_DIR = "checkpoints"  # inside a run folder, as in conf/callbacks/model_checkpoint.yaml
RESOLVED_CONFIG = "config_resolved.yaml"  # the run's config with input_shape/num_classes filled in
HYDRA_CONFIG = ".hydra/config.yaml"  # the composed config, as Hydra saved it
HYDRA_OVERRIDES = ".hydra/overrides.yaml"  # the command line's overrides
RUN_INFO = "run.json"  # provenance (cnnexp.provenance)
# What only a run that started training leaves (Hydra itself writes .hydra/ and the log before the task runs).
RUN_MARKERS = (RESOLVED_CONFIG, RUN_INFO, CKPT_DIR)


def run_dir_of(path: str | os.PathLike) -> Path:
    """The run folder a path belongs to: `<run>/checkpoints/x.ckpt`, `<run>/checkpoints` and `<run>` -> `<run>`.

    A file outside a `checkpoints/` folder belongs to its own folder; a folder is its own run folder.
    """
    path = Path(path).expanduser().resolve()
    folder = path if path.is_dir() else path.parent
    return folder.parent if folder.name == CKPT_DIR else folder


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a folder that a run has already written into (not just Hydra's `.hydra/`)."""
    path = Path(path)
    return path.is_dir() and any((path / marker).exists() for marker in RUN_MARKERS)


def saved_config_path(run_dir: str | os.PathLike) -> Path | None:
    """The run's composed config (`.hydra/config.yaml`, else `config_resolved.yaml`), or None."""
    for rel in (HYDRA_CONFIG, RESOLVED_CONFIG):
        if (Path(run_dir) / rel).is_file():
            return Path(run_dir) / rel
    return None


HYDRA_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml")


def discard_unstarted_run_dir(path: str | os.PathLike, log_name: str = "train.log") -> bool:
    """Remove a run folder that holds only what Hydra writes before the task runs (`.hydra/` and the log).

    Used when the run is refused before it starts: such a folder has nothing to look at. Only those named files
    and the two folders are removed, one by one (never a recursive delete), and only when nothing else is there.

    Returns:
        True when the folder was removed.
    """
    path = Path(path)
    allowed = {path / rel for rel in (*HYDRA_FILES, log_name)} | {path / ".hydra"}
    try:
        present = set(path.rglob("*"))
    except OSError:
        return False
    if not path.is_dir() or not present <= allowed:
        return False
    try:
        for file in sorted(present - {path / ".hydra"}):
            file.unlink()
        if (path / ".hydra").exists():
            (path / ".hydra").rmdir()
        path.rmdir()
    except OSError:
        return False
    return True
