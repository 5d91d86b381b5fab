"""Names that say what differs: a sweep job's folder (and so its TensorBoard run) is named from its swept values.

`hydra.sweep.subdir: ${cnnexp.job_dir:}` gives `0_optimizer.lr=0.001`, `1_optimizer.lr=0.03`: the job number
(unique, in launch order) and the values of the keys the sweep varies, not the overrides every job shares.
The swept keys are the keys of `hydra.sweeper.params` (an Optuna search space) and the command-line overrides
that are sweeps (`a=1,2`, `choice(...)`, `range(...)`), read from the sweep folder's `multirun.yaml`, which
Hydra's sweepers write before they launch the first job (on any launcher: joblib, submitit, SLURM).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

MAX_NAME = 100  # characters of the values part of a folder name
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


def sweep_keys(overrides: list[str]) -> list[str]:
    """The keys of the overrides that are sweeps: `["optimizer.lr=1e-3,3e-2", "seed=1"]` -> `["optimizer.lr"]`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    return [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]


def swept_keys(hydra_cfg: Any) -> list[str]:
    """The keys a multirun varies, from a job's `hydra` config node ([] when it cannot tell).

    Args:
        hydra_cfg: the `hydra` node of a job's config (`HydraConfig.get()` or `cfg.hydra`).
    """
    keys = [str(k) for k in (OmegaConf.select(hydra_cfg, "sweeper.params", default=None) or {})]
    sweep_dir = OmegaConf.select(hydra_cfg, "sweep.dir", default=None)
    master = Path(str(sweep_dir)) / "multirun.yaml" if sweep_dir else None
    if master is not None and master.is_file():
        try:
            task = OmegaConf.select(OmegaConf.load(master), "hydra.overrides.task", default=None) or []
            keys += sweep_keys(list(task))
        except Exception:  # noqa: BLE001 - a name is a convenience, never a reason to fail a job
            pass
    return list(dict.fromkeys(keys))


def override_key(override: str) -> tuple[str, str]:
    """`"+optimizer.lr=0.1"` -> `("optimizer.lr", "0.1")`; a deletion `"~callbacks.x"` -> `("callbacks.x", "~")`."""
    key, sep, value = str(override).partition("=")
    if key.startswith("~"):
        return key.lstrip("~"), value if sep else "~"
    return key.lstrip("+"), value


def safe_name(text: str, limit: int = MAX_NAME) -> str:
    """A folder-name-safe version of `text`: runs of other characters than `A-Z a-z 0-9 . _ = , + -` become `_`,
    at most `limit` characters, never empty, never starting with a dot."""
    name = _UNSAFE.sub("_", text).strip("_")[:limit].lstrip(".")
    return name or "job"


def job_name(overrides: list[str], keys: list[str]) -> str:
    """`k=v` for each override whose key is in `keys` (all overrides when `keys` is empty), joined with `,` and
    made folder-safe; "" when no override qualifies."""
    from cnnexp.report.table import short  # long numbers to 4 significant digits, as in the report

    parts = []
    for key, value in map(override_key, overrides):
        if key.startswith("hydra.") or (keys and key not in keys):
            continue
        parts.append(f"{key}={short(value)}")
    return safe_name(",".join(parts)) if parts else ""


def job_dir(*, _root_: DictConfig) -> str:
    """The resolver `${cnnexp.job_dir:}`: `<job number>_<swept values>` for a job of a multirun."""
    hydra_cfg = _root_.hydra
    num = OmegaConf.select(hydra_cfg, "job.num", default=0)
    overrides = list(OmegaConf.select(hydra_cfg, "overrides.task", default=None) or [])
    name = job_name(overrides, swept_keys(hydra_cfg))
    return f"{num}_{name}" if name else str(num)
