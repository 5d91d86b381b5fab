"""Compose cnnexp's Hydra config in-process (no run folder, no logging setup) for config-level tests."""

from __future__ import annotations

from typing import Any


def compose(overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The DictConfig `python -m cnnexp <overrides>` would build (without the `hydra` node)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="cnnexp.conf", version_base=None):
        return hydra_compose(config_name="config", overrides=list(overrides))
