"""Which checkpoint a run resumes from (`ckpt_path` / `resume`), and refusing one that does not fit this run.

`resolve_ckpt_path(cfg)` turns the config keys into a file (the rule is in its docstring); `check_resumable`
compares the checkpoint's run config with this one on `MATCH_KEYS` (a Conv 32 checkpoint cannot resume a Conv 8
model, an Adam state cannot resume SGD), and `resume_errors` turns what Lightning raises for a mismatch that the
configs did not show into a ConfigError.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnexp.errors import ConfigError
from cnnexp.run_folders import CKPT_DIR, run_dir_of, saved_config_path

LAST = "last.ckpt"
INTERRUPTED = "interrupted.ckpt"
# A run resumes only a run that agrees on these: the same task, model, optimizer and data.
MATCH_KEYS = ("task_name", "model._target_", "model.net.layers", "optimizer._target_", "data._target_",
              "data.name")


def _select(cfg: Any, key: str, default: Any = None) -> Any:
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
    except Exception:  # an interpolation that cannot resolve here (e.g. ${hydra:...} outside a Hydra run)
        return default
    return OmegaConf.to_container(value, resolve=False) if OmegaConf.is_config(value) else value


def _saved_config(run_dir: Path) -> Any | None:
    """The composed config a run folder saved (None when it has none, or it does not parse)."""
    from omegaconf import OmegaConf

    path = saved_config_path(run_dir)
    try:
        return OmegaConf.load(path) if path is not None else None
    except Exception:
        return None


def _differences(cfg: Any, saved: Any) -> list[str]:
    """The `MATCH_KEYS` on which `saved` (a run's config) and `cfg` disagree; keys absent from `saved` agree."""
    missing = object()
    return [key for key in MATCH_KEYS
            if (old := _select(saved, key, missing)) is not missing and old != _select(cfg, key)]


def check_resumable(cfg: Any, ckpt: str | Path) -> None:
    """Raise ConfigError when the run that wrote `ckpt` used another model, optimizer or data than `cfg`.

    The checkpoint's run folder (`cnnexp.run_folders.run_dir_of`) holds its saved config; for a checkpoint
    without one the optimizer state is compared (`check_optimizer_state`) and the weights are left to
    `resume_errors`.
    """
    saved = _saved_config(run_dir_of(ckpt))
    if saved is None:
        check_optimizer_state(cfg, ckpt)  # no config to compare: read the optimizer's state instead
        return
    differ = _differences(cfg, saved)
    if differ:
        shown = "; ".join(f"{k}: {_short(_select(saved, k))} there, {_short(_select(cfg, k))} here" for k in differ)
        raise ConfigError(f"cannot resume from {ckpt}: it was trained with another config ({shown}). Fix: resume "
                          f"with the same model, optimizer and data as that run (its overrides are in "
                          f"{run_dir_of(ckpt) / '.hydra/overrides.yaml'}), or start from scratch without "
                          f"ckpt_path/resume.")


def check_optimizer_state(cfg: Any, ckpt: str | Path) -> None:
    """Raise ConfigError when `ckpt`'s optimizer state lacks settings this run's optimizer keeps (an Adam state has
    no `momentum` for SGD: torch would only fail at the first step, with a KeyError)."""
    import torch
    from hydra.utils import get_object

    from cnnexp.checkpoints.loading import load_checkpoint

    target = _select(cfg, "optimizer._target_")
    if not isinstance(target, str) or not target.startswith("torch.optim."):
        return
    try:
        groups = load_checkpoint(ckpt)["optimizer_states"][0]["param_groups"]
        kwargs = {k: v for k, v in (_select(cfg, "optimizer") or {}).items() if not str(k).startswith("_")}
        fresh = get_object(target)([torch.zeros(1, requires_grad=True)], **kwargs)
    except Exception:  # not a Lightning checkpoint, no optimizer state, unresolved values: nothing to compare
        return
    missing = sorted(set(fresh.defaults) - set(groups[0]))
    if missing:
        raise ConfigError(f"cannot resume from {ckpt}: its optimizer state has no {', '.join(map(repr, missing))}, "
                          f"which {target.rsplit('.', 1)[-1]} needs: it was written by another optimizer. Fix: "
                          f"resume with the optimizer that run used, or start from scratch without "
                          f"ckpt_path/resume.")


def _short(value: Any) -> str:
    """A layer list as its layer names (`[Rescaling, Conv2D(filters=8), ...]`), anything else as a short repr."""
    if isinstance(value, list) and all(isinstance(v, dict) and "_target_" in v for v in value):
        def one(layer: dict) -> str:
            size = next((f"{k}={layer[k]}" for k in ("filters", "units", "rate") if layer.get(k) is not None), "")
            return f"{str(layer['_target_']).rsplit('.', 1)[-1]}({size})" if size else str(layer["_target_"]).rsplit(".", 1)[-1]
        return "[" + ", ".join(one(v) for v in value) + "]"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _raised_while_restoring(error: BaseException) -> bool:
    """True when `error` comes from loading a checkpoint's state (a `load_state_dict` / `restore` frame)."""
    tb = error.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        if "load_state_dict" in name or name.startswith("restore") or name.startswith("_restore"):
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def resume_errors(ckpt: str | None) -> Iterator[None]:
    """Turn Lightning's errors for a checkpoint that does not fit the model or optimizer into a ConfigError.

    Only errors raised while the checkpoint's state is restored (state_dict size mismatches, an optimizer state
    without `momentum`) count; anything else raised during training stays what it is.
    """
    try:
        yield
    except (RuntimeError, KeyError, ValueError) as error:
        if ckpt is None or not _raised_while_restoring(error):
            raise
        text = str(error).strip()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        first = " ".join(lines[:2])[:240] if lines else "no message"  # the headline and the first mismatch
        raise ConfigError(f"cannot resume from {ckpt}: it does not fit this model or optimizer "
                          f"({type(error).__name__}: {first}). Fix: resume with the model and optimizer that run "
                          f"used, or start from scratch without ckpt_path/resume.") from error


def _run_checkpoint(run_dir: Path) -> Path | None:
    """The file a run folder resumes from: the newer of checkpoints/last.ckpt and checkpoints/interrupted.ckpt."""
    found = [p for p in (run_dir / CKPT_DIR / LAST, run_dir / CKPT_DIR / INTERRUPTED) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def find_latest_run_checkpoint(cfg: Any) -> tuple[Path | None, Path]:
    """Newest resumable checkpoint among `<paths.log_dir>/runs/*/` runs of the same experiment.

    Returns:
        `(checkpoint or None, the runs folder that was searched)`.
    """
    log_dir = _select(cfg, "paths.log_dir", "outputs")
    runs_root = Path(str(log_dir)) / "runs"
    current = _select(cfg, "paths.output_dir")
    current = Path(str(current)).resolve() if current else None
    candidates: list[Path] = []
    for run_dir in sorted(runs_root.glob("*/")) if runs_root.is_dir() else []:
        if current is not None and run_dir.resolve() == current:
            continue
        ckpt = _run_checkpoint(run_dir)
        if ckpt is None:
            continue
        saved = _saved_config(run_dir)
        if saved is not None and _differences(cfg, saved):
            continue
        candidates.append(ckpt)
    if not candidates:
        return None, runs_root
    return max(candidates, key=lambda p: p.stat().st_mtime_ns), runs_root


def resolve_ckpt_path(cfg: Any) -> str | None:
    """The checkpoint `trainer.fit(ckpt_path=...)` resumes from, from the `ckpt_path` and `resume` keys.

    See `_resolve` for the rule; the checkpoint's run must have used the same model, optimizer and data
    (`check_resumable`).
    """
    path = _resolve(cfg)
    if path is not None:
        check_resumable(cfg, path)
    return path


def _resolve(cfg: Any) -> str | None:
    """The checkpoint the `ckpt_path` and `resume` keys name.

    Rules:
      - `ckpt_path: null` and `resume: false` -> None (train from scratch).
      - `ckpt_path: <file>` -> that file (it must exist).
      - `resume: <run folder or file>` -> that run's newer of `checkpoints/last.ckpt` / `checkpoints/interrupted.ckpt`.
      - `ckpt_path: last` or `resume: true` -> among the run folders `<paths.log_dir>/runs/*/` other than this run's,
        those whose saved `.hydra/config.yaml` agrees with this config on `MATCH_KEYS` (task, model, optimizer,
        data), the most recently written `last.ckpt` / `interrupted.ckpt`. (Sweep jobs live under
        `<log_dir>/multirun/`: resume one with `resume=<its folder>`.)

    Raises:
        ConfigError: nothing to resume from; the message names the file or folder that was searched.
    """
    ckpt_path = _select(cfg, "ckpt_path")
    resume = _select(cfg, "resume", False)
    if ckpt_path not in (None, "", "last"):
        path = Path(str(ckpt_path)).expanduser()
        if path.is_dir():
            return _from_run_dir(path, "ckpt_path")
        if not path.is_file():
            raise ConfigError(f"ckpt_path={ckpt_path}: no such checkpoint file. Pass an existing .ckpt, or "
                              f"ckpt_path=last / resume=true for the newest run of this task.")
        return str(path)
    if isinstance(resume, str) and resume.lower() not in ("true", "false", ""):
        return _from_run_dir(Path(resume).expanduser(), "resume")
    if ckpt_path == "last" or resume is True or (isinstance(resume, str) and resume.lower() == "true"):
        found, runs_root = find_latest_run_checkpoint(cfg)
        if found is None:
            key = "ckpt_path=last" if ckpt_path == "last" else "resume=true"
            wanted = ", ".join(f"{k}={_short(_select(cfg, k))}" for k in MATCH_KEYS if _select(cfg, k) is not None)
            raise ConfigError(
                f"{key}: no earlier run with checkpoints/{LAST} under {runs_root}/*/ with the same task, model, "
                f"optimizer and data ({wanted}). Fix: start without it, or pass resume=<run folder> / "
                f"ckpt_path=<file.ckpt>."
            )
        return str(found)
    if resume not in (False, None, "", "false"):
        raise ConfigError(f"resume={resume!r}: use false, true, or a run folder such as outputs/runs/<run>.")
    return None


def _from_run_dir(path: Path, key: str) -> str:
    if path.is_file():
        return str(path)
    run_dir = run_dir_of(path)  # a run folder or its checkpoints/ folder
    found = _run_checkpoint(run_dir) if run_dir.is_dir() else None
    if found is not None:
        return str(found)
    raise ConfigError(
        f"{key}={path}: no checkpoint found; searched {path / CKPT_DIR / LAST} and {path / CKPT_DIR / INTERRUPTED}. "
        f"Pass a run folder that has a checkpoints/ folder, or a .ckpt file."
    )
