"""Hydra's sweep syntax as an Optuna (>= 3) search space: the syntax hydra-optuna-sweeper 1.3 reads.

    optimizer.lr: tag(log, interval(1e-4, 1e-2))     -> FloatDistribution(1e-4, 1e-2, log=True)
    model.dropout: interval(0.0, 0.5)                 -> FloatDistribution(0.0, 0.5)
    trainer.max_epochs: int(interval(5, 20))          -> IntDistribution(5, 20)
    data.batch_size: choice(16, 32, 64)               -> CategoricalDistribution((16, 32, 64))
    model.net.layers.1.filters: range(8, 33, 8)       -> IntDistribution(8, 32, step=8)   (Python's range: 33 excluded)
    seed: 7                                           -> fixed, passed to every trial as `seed=7`

`range` with `shuffle` becomes a categorical over its values, like in the published plugin.
"""

from __future__ import annotations

from typing import Any

from cnnexp.errors import ConfigError


def distribution(override: Any) -> Any:
    """The Optuna distribution of one parsed sweep override (`hydra.core.override_parser.types.Override`)."""
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    key = override.get_key_element()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        # encode: lists and dicts become their override text, e.g. "[1,2]", which Hydra parses back in the job
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        start, stop, step = value.start, value.stop, value.step
        if all(isinstance(v, int) for v in (start, stop, step)):
            last = start + step * ((stop - start - 1) // step)  # range() excludes stop
            return IntDistribution(start, last, step=step)
        return FloatDistribution(float(start), float(stop), step=float(step))
    if override.is_interval_sweep():
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(f"{key}: {override.input_line!r} is no search space Optuna understands. "
                      "Fix: use choice(...), range(...), interval(...) or tag(log, interval(...)).")


def search_space(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split `["optimizer.lr=tag(log, interval(1e-4, 1e-2))", "seed=7"]` into the search space and the fixed rest.

    Returns:
        `({key: distribution}, [fixed override, ...])`; a later override of the same key wins (the command
        line over `hydra.sweeper.params`).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.input_line
    return space, list(fixed.values())
