"""The hyperparameters a run shows in TensorBoard's HParams tab (and MLflow's params): few, flat, and in order.

TensorBoard's HParams table shows the first five columns and sorts the rest by name; a run that logs its whole
config (84 keys, `data/_target_` first) hides the learning rate behind a scroll bar. `run_hparams` keeps:

1. the keys a sweep varies, then the other keys this run overrode on the command line; the swept ones (or, for a
   single run, all overridden ones) are marked as "differing", so that TensorBoard sorts and ticks them first;
2. a curated set: `optimizer.lr`, `data.batch_size`, `model.conv_impl`, `filters` (the Conv2D filter counts of
   the net), `model.dropout`, `trainer.max_epochs`, `seed`, `params` (parameter count) and the chosen config
   groups (`data`, `model`, `optimizer`, `scheduler`), plus `tags`;

each key once, at most `MAX_HPARAMS` of them, with values TensorBoard accepts (numbers, strings, booleans).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from cnnexp.sweepers.naming import override_key

MAX_HPARAMS = 30
# config keys shown for every run, in this order (missing keys are skipped)
CURATED_KEYS = ("optimizer.lr", "data.batch_size", "model.conv_impl", "model.dropout", "trainer.max_epochs", "seed")
CHOSEN_GROUPS = ("data", "model", "optimizer", "scheduler")  # the config group options, e.g. model=tiny_cnn


def task_overrides() -> list[str]:
    """The command-line overrides of this job (`["optimizer.lr=0.001", "model=tiny_cnn"]`); [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def sweep_varies() -> list[str]:
    """The keys this job's multirun varies (`cnnexp.sweepers.naming.swept_keys`); [] outside a multirun."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    from cnnexp.sweepers.naming import swept_keys

    return swept_keys(HydraConfig.get())


def group_choices() -> dict[str, str]:
    """The option chosen for each config group (`{"model": "tiny_cnn", ...}`); {} outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return {str(k): str(v) for k, v in HydraConfig.get().runtime.choices.items() if v is not None}


def scalar(value: Any) -> bool | int | float | str:
    """A value TensorBoard's HParams accepts: numbers and booleans as they are, anything else as short text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "null"
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, (list, tuple)):
        return ",".join(str(scalar(v)) for v in value)
    return str(value)


def conv_filters(cfg: DictConfig) -> str | None:
    """The `filters` of every layer of `model.net.layers` that has one, e.g. `"32,64"`; None without a layer list."""
    layers = OmegaConf.select(cfg, "model.net.layers", default=None)
    if not isinstance(layers, ListConfig):
        return None
    counts = [str(layer.filters) for layer in layers if isinstance(layer, DictConfig) and "filters" in layer]
    return ",".join(counts) or None


def short_target(cfg: DictConfig, key: str) -> str | None:
    """The class name of `<key>._target_` (`torch.optim.Adam` -> `Adam`), or None."""
    target = OmegaConf.select(cfg, f"{key}._target_", default=None)
    return str(target).rsplit(".", 1)[-1] if target else None


def run_hparams(
    cfg: DictConfig, model: Any, overrides: list[str] | None = None, choices: dict[str, str] | None = None,
    swept: list[str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The concise hyperparameters of a run and the names of the overridden ones.

    Args:
        cfg: the run's composed config (resolved values are read from it).
        model: the built model (its parameters are counted).
        overrides: the command-line overrides; default: this Hydra job's (`task_overrides()`).
        choices: the config group options; default: this Hydra job's (`group_choices()`).
        swept: the keys a sweep varies (listed before the other overrides); default: this multirun's.

    Returns:
        `(hparams, differs)`: an ordered `{name: bool | int | float | str}` with the swept keys first, then the
        other overrides, then the curated set, at most `MAX_HPARAMS` entries; and the names that differ between
        runs (the swept keys; all overrides for a run outside a sweep).
    """
    overrides = task_overrides() if overrides is None else overrides
    choices = group_choices() if choices is None else choices
    swept = sweep_varies() if swept is None else swept
    parsed = [override_key(o) for o in overrides]
    parsed.sort(key=lambda kv: kv[0] not in swept)  # stable: swept keys first, each group in command-line order
    hparams: dict[str, Any] = {}
    for key, text in parsed:
        if key.startswith("hydra.") or key in hparams:
            continue
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        group_or_missing = value is None or isinstance(value, (DictConfig, ListConfig))
        hparams[key] = scalar(text if group_or_missing else value)  # model=tiny_cnn shows "tiny_cnn"
    differs = [k for k in hparams if k in swept] or list(hparams)

    curated: dict[str, Any] = {}
    for key in CURATED_KEYS:
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is not None:
            curated[key] = scalar(value)
    curated["filters"] = conv_filters(cfg)
    curated["params"] = sum(p.numel() for p in model.parameters())
    for group in CHOSEN_GROUPS:
        curated[group] = choices.get(group) or short_target(cfg, group)
    tags = cfg.get("tags")
    if tags:
        curated["tags"] = scalar(tags)
    for key, value in curated.items():
        if value is not None and key not in hparams:
            hparams[key] = value
    return dict(list(hparams.items())[:MAX_HPARAMS]), differs[:MAX_HPARAMS]
