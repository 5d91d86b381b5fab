"""Safe checkpoint loading: `torch.load(weights_only=True)` with an explicit allowlist of classes.

`load_checkpoint(path)` reads a Lightning (or plain `torch.save`) checkpoint: only tensors, containers and the
classes of `safe_globals()` are rebuilt, so a crafted pickle cannot run code. A refused file raises
`UnsafeCheckpointError` naming the file and the classes it asked for.
"""

from __future__ import annotations

import collections
import functools
import inspect
import os
import pathlib
import typing
import warnings
from pathlib import Path
from typing import Any

import torch

from cnnexp.errors import ConfigError

LAST = "last.ckpt"


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
