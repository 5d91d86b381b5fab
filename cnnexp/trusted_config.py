"""Instantiate configs read from disk with an explicit allowlist of `_target_`s: a crafted config runs no code.

A run folder's `config_resolved.yaml` (what `cnnexp.evaluate`, `cnnexp.rerun` and model loading read) is a file
anyone can hand you. Hydra's `instantiate` calls whatever `_target_` names (`torch.load` with
`weights_only: false` unpickles code; `builtins.open` creates files), so every `_target_` in such a config is
checked first (`check_targets`), and only these may be built:

- cnnexp's own classes in `cnnexp.layers`, `.models`, `.lit`, `.data` and `.sweepers` that are layers,
  networks, Lightning modules, data modules, callbacks, loggers, profilers or checkpoint IO
  (`ALLOWED_CNNEXP_BASES`), and
  the augmentation factory and batch transform in `ALLOWED_CALLABLES`;
- torch.optim optimizers and torch.optim.lr_scheduler schedulers;
- the Lightning trainer, strategy, callbacks and loggers that cnnexp's configs use (`ALLOWED_LIGHTNING`).

Anything else is refused with an `UntrustedConfigError` naming the key. The string is checked before anything is
imported, so a target outside these packages is never even imported.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from cnnexp.errors import ConfigError

CNNEXP_PACKAGES = ("cnnexp.layers.", "cnnexp.models.", "cnnexp.lit.", "cnnexp.data.", "cnnexp.sweepers.")
ALLOWED_CALLABLES = frozenset({"cnnexp.data.augment.keras_augment",  # an augmentation factory and a transform class
                               "cnnexp.data.batch_augment.BatchRandomAffine"})
TORCH_OPTIM_PACKAGES = ("torch.optim.",)
ALLOWED_LIGHTNING = frozenset({
    "lightning.pytorch.Trainer",
    "lightning.pytorch.strategies.DDPStrategy",
    "lightning.pytorch.callbacks.ModelCheckpoint",
    "lightning.pytorch.callbacks.EarlyStopping",
    "lightning.pytorch.callbacks.LearningRateMonitor",
    "lightning.pytorch.callbacks.RichProgressBar",
    "lightning.pytorch.callbacks.TQDMProgressBar",
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.MLFlowLogger",
})


# In the `hydra` node (a rerun composes one from overrides read from disk): Hydra's own launchers and sweepers, the
# plugins installed with cnnexp[sweep], and cnnexp's Hydra callbacks.
ALLOWED_HYDRA_PREFIXES = ("hydra._internal.core_plugins.", "hydra_plugins.hydra_submitit_launcher.",
                          "hydra_plugins.hydra_joblib_launcher.", "hydra_plugins.hydra_optuna_sweeper.",
                          "hydra_plugins.cnnexp_sweepers.", "optuna.samplers.", "optuna.pruners.",
                          "cnnexp.early_checks.", "cnnexp.sweepers.")


class UntrustedConfigError(ConfigError):
    """A config read from disk names a `_target_` outside cnnexp's allowlist."""


def ALLOWED_CNNEXP_BASES() -> tuple[type, ...]:  # noqa: N802 - a constant, built lazily (imports lightning)
    """The base classes a cnnexp `_target_` must derive from."""
    import lightning as L
    import torch
    from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.profilers import Profiler

    return (torch.nn.Module, L.LightningModule, L.LightningDataModule, L.Callback, CheckpointIO, Logger, Profiler)


def is_allowed(target: Any) -> bool:
    """True when `target` (a `_target_` string) is on the allowlist (see the module docstring)."""
    from hydra.utils import get_object

    if not isinstance(target, str):
        return False
    if target in ALLOWED_LIGHTNING or target in ALLOWED_CALLABLES:
        return True
    if target.startswith(CNNEXP_PACKAGES):
        try:
            obj = get_object(target)
        except Exception:
            return False
        import torch

        if inspect.isclass(obj) and issubclass(obj, torch.nn.Module):
            return True  # layers and networks: checked without importing lightning (cnnexp.load_model)
        return inspect.isclass(obj) and issubclass(obj, ALLOWED_CNNEXP_BASES())
    if target.startswith(TORCH_OPTIM_PACKAGES):
        import torch

        try:
            obj = get_object(target)
        except Exception:
            return False
        bases = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
        return inspect.isclass(obj) and issubclass(obj, bases)
    return False


def is_allowed_in_hydra_node(target: Any) -> bool:
    """True for a `_target_` under `hydra.` that is on `ALLOWED_HYDRA_PREFIXES` (checked as a string only)."""
    return isinstance(target, str) and target.startswith(ALLOWED_HYDRA_PREFIXES) and ".." not in target


def _plain(cfg: Any) -> Any:
    """`cfg` as plain dicts and lists, resolved where it can be (a `_target_` left as `${...}` is refused)."""
    from omegaconf import OmegaConf

    if not OmegaConf.is_config(cfg):
        return cfg
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # e.g. ${hydra:...} outside a Hydra run
        return OmegaConf.to_container(cfg, resolve=False)


def _targets(node: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every `(key, _target_ value)` in a config tree (DictConfig/ListConfig or plain containers).

    Keys are full dotted keys (`data`, `model.net.layers.3`; "" for the root), also for a sub-node such as `cfg.data`.
    """
    from omegaconf import OmegaConf

    if not key and OmegaConf.is_config(node):
        key = str(node._get_full_key(None) or "")  # noqa: SLF001 - "data" for cfg.data
    node = _plain(node)
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        if "_target_" in node:
            found.append((key, node["_target_"]))
        for k, v in node.items():
            found += _targets(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            found += _targets(v, f"{key}.{i}" if key else str(i))
    return found


def target_problems(cfg: Any) -> list[str]:
    """One line per `_target_` that is not allowed (empty when every target is)."""
    def allowed(key: str, target: Any) -> bool:
        return is_allowed_in_hydra_node(target) if key == "hydra" or key.startswith("hydra.") else is_allowed(target)

    return [f"{key + '.' if key else ''}_target_={target!r}" for key, target in _targets(cfg)
            if not allowed(key, target)]


def check_targets(cfg: Any, source: str | os.PathLike) -> None:
    """Raise UntrustedConfigError naming every key whose `_target_` is not allowed.

    Args:
        cfg: a config read from disk (or composed from overrides read from disk).
        source: the file it came from, named in the message.
    """
    problems = target_problems(cfg)
    if problems:
        raise UntrustedConfigError(
            f"refused to build {', '.join(problems)} from {source}: only cnnexp's own classes, torch.optim and the "
            f"Lightning trainer, callbacks and loggers that cnnexp uses may be instantiated from a saved config "
            f"(it could run code). Fix: use a run folder you trust, or edit that key in the file "
            f"(see cnnexp.trusted_config for the allowlist).")


def instantiate_trusted(node: Any, source: str | os.PathLike, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate(node, **kwargs)` after `check_targets(node)`; for configs read from disk.

    Example (what model loading does):
        >>> cfg = OmegaConf.load("outputs/runs/<run>/config_resolved.yaml")
        >>> model = instantiate_trusted(cfg.model, source="outputs/runs/<run>/config_resolved.yaml")
    """
    from hydra.utils import instantiate

    check_targets(node, source)
    return instantiate(node, **kwargs)
