"""Checkpoint files: safe loading, atomic writing, and finding the checkpoint a run resumes from.

- `load_checkpoint(path)` reads a Lightning (or plain `torch.save`) checkpoint with `torch.load(weights_only=True)`:
  only tensors, containers and an explicit allowlist of classes (`safe_globals()`) are rebuilt, so a crafted pickle
  cannot run code. A refused file raises `UnsafeCheckpointError` naming the file and the classes it asked for.
- `atomic_torch_save(obj, path)` writes to a temporary file in the same folder, fsyncs it and `os.replace`s it over
  `path`: a write that is killed leaves the previous file intact, never a truncated one.
- `resolve_ckpt_path(cfg)` turns the `ckpt_path` / `resume` config keys into a file (the rule is in its docstring).
- `rng_states()` / `set_rng_states(states)`: the python, numpy and torch (CPU, CUDA) random states as tensors and
  ints, so they fit in a checkpoint that loads with weights_only=True (a resumed run then draws the same dropout
  masks as an uninterrupted one).
"""

from __future__ import annotations

import collections
import functools
import inspect
import os
import pathlib
import tempfile
import typing
import warnings
from pathlib import Path
from typing import Any

import torch

from cnnexp.errors import ConfigError

LAST = "last.ckpt"
INTERRUPTED = "interrupted.ckpt"
CKPT_DIR = "checkpoints"  # inside a run folder, as in conf/callbacks/model_checkpoint.yaml
SAVED_CONFIG = (".hydra/config.yaml", "config.yaml")  # where a run folder keeps its composed config
MATCH_KEYS = ("task_name", "data._target_", "model.net.layers")  # a run resumes only a run that agrees on these


class UnsafeCheckpointError(ConfigError):
    """A checkpoint asks to rebuild objects outside the allowlist (it could run code when unpickled)."""


def _optim_classes() -> list[type]:
    """Every optimizer and LR scheduler class in torch.optim (Hydra's `_partial_` optimizers land in hparams)."""
    bases = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
    modules = (torch.optim, torch.optim.lr_scheduler)
    found = [obj for mod in modules for _, obj in inspect.getmembers(mod, inspect.isclass)]
    return [c for c in found if issubclass(c, bases)]


def _omegaconf_classes() -> list[Any]:
    """The OmegaConf containers and nodes that `save_hyperparameters` stores for a DictConfig."""
    from omegaconf import DictConfig, ListConfig, base, nodes

    node_types = [obj for _, obj in inspect.getmembers(nodes, inspect.isclass) if issubclass(obj, nodes.ValueNode)]
    return [DictConfig, ListConfig, base.ContainerMetadata, base.Metadata, *node_types]


@functools.cache
def safe_globals() -> tuple[Any, ...]:
    """The classes a cnnexp/Lightning checkpoint may contain besides tensors, ints, floats, strings and containers.

    None of them runs code when rebuilt: they are data containers (OmegaConf, collections, paths), `typing.Any`
    (OmegaConf metadata), `functools.partial` (a Hydra `_partial_: true` optimizer; its function must itself be
    on this list), and the torch.optim classes such a partial points to.
    """
    builtin = [dict, list, tuple, set, frozenset, int, float, bool, str, bytes, slice, complex]
    containers = [collections.OrderedDict, collections.defaultdict, collections.Counter, collections.deque]
    paths = [pathlib.Path, pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath]
    return (*builtin, *containers, *paths, typing.Any, functools.partial, *_optim_classes(), *_omegaconf_classes())


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code from it.

    Args:
        path: a `.ckpt`/`.pt` file written by Lightning or `torch.save`.
        map_location: passed to `torch.load` (default: everything on the CPU).

    Returns:
        The checkpoint dict (`state_dict`, `epoch`, `global_step`, `optimizer_states`, ... for Lightning files).

    Raises:
        ConfigError: the file is missing, truncated or not a torch checkpoint.
        UnsafeCheckpointError: the pickle asks for a class or function outside `safe_globals()`.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}. Pass an existing .ckpt file (ckpt_path=...) or resume=true.")
    try:
        with torch.serialization.safe_globals(list(safe_globals())), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes "unsafe" or "corrupt", naming the file
        blocked = _blocked_globals(path)
        if blocked or "Unsupported global" in str(exc):
            what = ", ".join(blocked) if blocked else str(exc).split("Unsupported global:")[-1].split("\n")[0].strip()
            raise UnsafeCheckpointError(
                f"refused to load {path}: it asks to run or rebuild {what}, which is not a tensor or plain data "
                f"(torch.load weights_only=True). Only load checkpoints you trust; if this is your own file and the "
                f"class is harmless, add it to cnnexp.checkpoints.safe_globals()."
            ) from exc
        raise _corrupt(path, exc) from exc


def _corrupt(path: Path, exc: BaseException) -> ConfigError:
    first = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__
    return ConfigError(
        f"checkpoint {path} is truncated or not a torch checkpoint ({first}). "
        f"Use another checkpoint, e.g. the run's checkpoints/{LAST} or its best epoch_*.ckpt."
    )


def _blocked_globals(path: Path) -> list[str]:
    """The globals in `path` that weights_only loading refuses (static scan, nothing is executed)."""
    try:
        with torch.serialization.safe_globals(list(safe_globals())):
            return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: a raw pickle, scanned opcode by opcode below
        pass
    allowed = {f"{g.__module__}.{g.__name__}" for g in safe_globals()}
    try:
        # a raw pickle is refused either way; name the globals that are not torch's own tensor rebuilders
        return [g for g in _pickle_globals(path.read_bytes()) if g not in allowed and not g.startswith("torch.")]
    except Exception:
        return []


def _pickle_globals(data: bytes) -> list[str]:
    """`module.name` of every GLOBAL / STACK_GLOBAL opcode in a raw pickle (static: nothing is executed)."""
    import pickletools

    found, strings = [], []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.append(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")
        elif isinstance(arg, str):
            strings.append(arg)
    return list(dict.fromkeys(found))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)` so that `path` is either the old file or the complete new one, never a partial write.

    Writes `.<name>.<random>.tmp` in the same folder (same filesystem, so the rename is atomic), flushes and
    fsyncs it, `os.replace`s it over `path` and fsyncs the folder. On any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def rng_states() -> dict[str, Any]:
    """Every global random state a training step may draw from, as tensors / ints / tuples (weights_only-safe)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),  # (version, tuple of 625 ints, None)
        "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states()` returned (missing entries are left alone)."""
    import random

    import numpy as np

    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    cuda = states.get("torch.cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _select(cfg: Any, key: str, default: Any = None) -> Any:
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
    except Exception:  # an interpolation that cannot resolve here (e.g. ${hydra:...} outside a Hydra run)
        return default
    return OmegaConf.to_container(value, resolve=False) if OmegaConf.is_config(value) else value


def _saved_config(run_dir: Path) -> Any | None:
    from omegaconf import OmegaConf

    for rel in SAVED_CONFIG:
        if (run_dir / rel).is_file():
            try:
                return OmegaConf.load(run_dir / rel)
            except Exception:
                return None
    return None


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
    want = {key: _select(cfg, key) for key in MATCH_KEYS}
    candidates: list[Path] = []
    for run_dir in sorted(runs_root.glob("*/")) if runs_root.is_dir() else []:
        if current is not None and run_dir.resolve() == current:
            continue
        ckpt = _run_checkpoint(run_dir)
        if ckpt is None:
            continue
        saved = _saved_config(run_dir)
        if saved is not None and any(_select(saved, k) != v for k, v in want.items()):
            continue
        candidates.append(ckpt)
    if not candidates:
        return None, runs_root
    return max(candidates, key=lambda p: p.stat().st_mtime_ns), runs_root


def resolve_ckpt_path(cfg: Any) -> str | None:
    """The checkpoint `trainer.fit(ckpt_path=...)` resumes from, from the `ckpt_path` and `resume` keys.

    Rules:
      - `ckpt_path: null` and `resume: false` -> None (train from scratch).
      - `ckpt_path: <file>` -> that file (it must exist).
      - `resume: <run folder or file>` -> that run's newer of `checkpoints/last.ckpt` / `checkpoints/interrupted.ckpt`.
      - `ckpt_path: last` or `resume: true` -> among the run folders `<paths.log_dir>/runs/*/` other than this run's,
        those whose saved `.hydra/config.yaml` agrees with this config on `MATCH_KEYS` (task_name, data class, layer
        list), the most recently written `last.ckpt` / `interrupted.ckpt`. (Sweep jobs live under
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
            wanted = ", ".join(f"{k}={_select(cfg, k)!r}" for k in MATCH_KEYS[:2])
            raise ConfigError(
                f"{key}: no earlier run with checkpoints/{LAST} under {runs_root}/*/ for this task ({wanted}). "
                f"Start without it, or pass resume=<run folder> / ckpt_path=<file.ckpt>."
            )
        return str(found)
    if resume not in (False, None, "", "false"):
        raise ConfigError(f"resume={resume!r}: use false, true, or a run folder such as outputs/runs/<run>.")
    return None


def _from_run_dir(path: Path, key: str) -> str:
    if path.is_file():
        return str(path)
    run_dir = path.parent if path.name == CKPT_DIR else path  # a run folder or its checkpoints/ folder
    found = _run_checkpoint(run_dir) if run_dir.is_dir() else None
    if found is not None:
        return str(found)
    raise ConfigError(
        f"{key}={path}: no checkpoint found; searched {path / CKPT_DIR / LAST} and {path / CKPT_DIR / INTERRUPTED}. "
        f"Pass a run folder that has a checkpoints/ folder, or a .ckpt file."
    )
