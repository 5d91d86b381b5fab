"""`cnnexp.load_model(path)`: the trained network of a run, as a plain eval-mode `nn.Module`, without Lightning.

`path` is a checkpoint (`<run>/checkpoints/epoch_NNN.ckpt`, `last.ckpt`, ...) or a run folder (its best checkpoint,
`checkpoints/epoch_*.ckpt`, else the newest `last.ckpt` / `interrupted.ckpt`). The run's saved config
(`config_resolved.yaml`, found as `cnnexp.evaluate` finds it) builds the network from `model.net`; the checkpoint's
`net.*` weights fill it, read with `torch.load(weights_only=True)` (nothing in the file can run code).

Example:
    >>> net = cnnexp.load_model("outputs/runs/2026-01-01_12-00-00")    # doctest: +SKIP
    >>> probs = torch.softmax(net(images), dim=1)                        # images (N, C, H, W), 0..255
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnexp.checkpoints import CKPT_DIR, INTERRUPTED, LAST
from cnnexp.errors import ConfigError

NET_PREFIX = "net."  # ImageClassifier keeps the network as `self.net`


def run_network(ckpt: str | os.PathLike) -> nn.Module:
    """The (untrained) network of the run that wrote `ckpt`, built from the run's saved `model.net` config: the one
    place deploy instantiates config, from allowlisted targets only (`cnnexp.trusted_config`: a crafted config file
    runs no code), and without importing Lightning."""
    from cnnexp.evaluate import read_run_config
    from cnnexp.trusted_config import instantiate_trusted

    cfg, source = read_run_config(ckpt)
    return instantiate_trusted(cfg.model.net, source)


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file for `path`: the file itself, or the best checkpoint of a run folder.

    Raises:
        ConfigError: nothing at `path`, or a run folder without checkpoints.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"{path} does not exist. Fix: pass a checkpoint (.ckpt) or a run folder (outputs/runs/...).")
    folder = path / CKPT_DIR
    best = sorted(folder.glob("epoch_*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    resumable = sorted((p for p in (folder / LAST, folder / INTERRUPTED) if p.is_file()),
                       key=lambda p: p.stat().st_mtime_ns)
    if best or resumable:
        return (best or resumable)[-1]
    raise ConfigError(f"the run folder {path} has no checkpoint in {folder}. Fix: pass a run folder that finished at "
                      f"least one epoch, or the .ckpt file itself.")


def net_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The network's entries of an ImageClassifier state dict, without the `net.` prefix.

    Raises:
        ConfigError: the checkpoint holds no `net.*` weights (not a cnnexp ImageClassifier checkpoint).
    """
    net = {k[len(NET_PREFIX):]: v for k, v in state_dict.items() if k.startswith(NET_PREFIX)}
    if not net:
        raise ConfigError(f"the checkpoint has no {NET_PREFIX}* weights (keys: {sorted(state_dict)[:5]} ...). "
                          f"Fix: pass a checkpoint that cnnexp's training wrote.")
    return net


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The trained network of a checkpoint or run folder, in eval mode (e.g. a KerasSequential).

    Args:
        path: a `.ckpt` file inside its run folder, or the run folder.
        device: where the network goes (default: the CPU).

    Shape:
        the returned module maps `(N, C, H, W)` images (0..255 for the default Rescaling) to logits `(N, K)`.

    Raises:
        ConfigError: no checkpoint, no saved config next to it, or weights that do not fit the saved network.
    """
    from cnnexp.checkpoints import load_checkpoint
    ckpt = find_checkpoint(path)
    net = run_network(ckpt)
    state = net_state_dict(load_checkpoint(ckpt).get("state_dict", {}))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"the weights in {ckpt} do not fit the network of its run's config ({str(err)[:300]}). "
                          f"Fix: keep the checkpoint inside the run folder that wrote it.") from None
    return net.to(device).eval()
