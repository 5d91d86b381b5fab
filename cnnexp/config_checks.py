"""check_config: the early, whole-config pass that turns a bad value into a ConfigError naming the key and the fix.

It runs on the composed config before anything is built (`cnnexp.early_checks.EarlyChecks`, a Hydra callback,
before the run folder exists), so `python -m cnnexp data.batch_size=-1` fails in milliseconds with
`error: data.batch_size=-1 is invalid: expected a positive integer ...` (exit 2) rather than deep inside a
DataLoader. The checks are two tables: `RULES` for fixed keys and `LAYER_RULES` for the arguments of each entry
of `model.net.layers`; their predicates live in `cnnexp.rules`, which the layers' and data modules' constructors
call too, so both agree. A key that is absent is not checked (other groups and presets may omit it).
`check_arguments` then reads the constructors' signatures for arguments they do not take (imports torch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnexp.errors import ConfigError
from cnnexp.rules import (
    fraction,
    is_int,
    nonneg_int,
    nonneg_number,
    open_fraction,
    padding,
    positive_int,
    positive_number,
    positive_pair,
    seed,
)

_ABSENT = object()


# -- predicates: value -> bool (the shared ones live in cnnexp.rules) -----------------------------------------
_is_int = is_int


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """`check`, or None."""
    return lambda v: v is None or check(v)


def epochs(v: Any) -> bool:
    """Lightning's max_epochs / max_steps: None, -1 (no limit) or >= 1."""
    return v is None or v == -1 and _is_int(v) or positive_int(v)


def batch_limit(v: Any) -> bool:
    """Lightning's limit_*_batches: an int >= 0 (batches) or a float in [0, 1] (fraction)."""
    return v is None or nonneg_int(v) or isinstance(v, float) and 0.0 <= v <= 1.0


def fast_dev_run(v: Any) -> bool:
    return isinstance(v, bool) or nonneg_int(v)


def one_of(choices: Callable[[], tuple[str, ...]]) -> Callable[[Any], bool]:
    return lambda v: v in choices()


def conv_impls() -> tuple[str, ...]:
    from cnnexp.functional import CONV_IMPLS

    return tuple(sorted(CONV_IMPLS))


def init_schemes() -> tuple[str, ...]:
    from cnnexp.layers.init import INIT_SCHEMES

    return tuple(INIT_SCHEMES)


@dataclass(frozen=True)
class Rule:
    """One check: `ok(value)` must hold for `key`; otherwise the message says `expect` and suggests `example`."""

    key: str
    ok: Callable[[Any], bool]
    expect: str
    example: str
    choices: Callable[[], tuple[str, ...]] | None = None  # for "one of": listed in the message


def _choice(key: str, choices: Callable[[], tuple[str, ...]], example: str) -> Rule:
    return Rule(key, one_of(choices), "one of", example, choices)


POS_INT, POS_NUM = "a positive integer", "a number > 0"
RULES: tuple[Rule, ...] = (
    Rule("seed", optional(seed), "an integer in [0, 2**32 - 1] (or null for a random seed)", "42"),
    Rule("data.seed", optional(seed), "an integer in [0, 2**32 - 1] (or null: the run's seed)", "42"),
    Rule("retain_cpu_memory", lambda v: isinstance(v, bool), "true or false", "true"),
    Rule("data.batch_size", positive_int, POS_INT, "32"),
    Rule("data.num_workers", nonneg_int, "an integer >= 0", "0"),
    Rule("data.val_fraction", open_fraction, "a number strictly between 0 and 1", "0.15"),
    Rule("data.test_fraction", open_fraction, "a number strictly between 0 and 1", "0.15"),
    Rule("data.validation_split", open_fraction, "a number strictly between 0 and 1", "0.2"),
    Rule("optimizer.lr", positive_number, POS_NUM, "0.001"),
    Rule("optimizer.weight_decay", nonneg_number, "a number >= 0", "0.0"),
    Rule("optimizer.momentum", nonneg_number, "a number >= 0", "0.9"),
    Rule("trainer.max_epochs", epochs, "an integer >= 1 (or -1 for no limit)", "20"),
    Rule("trainer.min_epochs", optional(nonneg_int), "an integer >= 0", "1"),
    Rule("trainer.max_steps", epochs, "an integer >= 1 (or -1 for no limit)", "-1"),
    Rule("trainer.gradient_clip_val", optional(nonneg_number), "null or a number >= 0", "1.0"),
    Rule("trainer.accumulate_grad_batches", positive_int, POS_INT, "1"),
    Rule("trainer.check_val_every_n_epoch", optional(positive_int), POS_INT, "1"),
    Rule("trainer.log_every_n_steps", positive_int, POS_INT, "10"),
    Rule("trainer.fast_dev_run", fast_dev_run, "true/false or a number of batches >= 0", "true"),
    *(Rule(f"trainer.limit_{s}_batches", batch_limit, "an int >= 0 (batches) or a float in [0, 1] (fraction)",
           "0.2") for s in ("train", "val", "test")),
    Rule("model.dropout", fraction, "a number in [0, 1)", "0.2"),
    _choice("model.conv_impl", conv_impls, "custom"),
    _choice("model.init", init_schemes, "keras"),
    _choice("model.net.conv_impl", conv_impls, "custom"),
    _choice("model.net.init", init_schemes, "keras"),
)

# Arguments of one entry of model.net.layers (Keras names); checked in every layer that has them.
LAYER_RULES: tuple[Rule, ...] = (
    Rule("filters", positive_int, POS_INT, "32"),
    Rule("units", optional(positive_int), "a positive integer (null: the number of classes)", "128"),
    Rule("kernel_size", positive_pair, "a positive integer or a pair of them", "3"),
    Rule("pool_size", positive_pair, "a positive integer or a pair of them", "2"),
    Rule("strides", optional(positive_pair), "a positive integer or a pair of them", "1"),
    Rule("dilation_rate", positive_pair, "a positive integer or a pair of them", "1"),
    Rule("padding", padding, '"valid", "same", or an integer (pair) >= 0', "valid"),
    Rule("rate", fraction, "a number in [0, 1)", "0.5"),
    _choice("conv_impl", conv_impls, "custom"),
)


def _select(cfg: Any, key: str) -> Any:
    """The resolved value at `key`, or _ABSENT (missing key, `???`, or an interpolation that cannot resolve here)."""
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    except Exception:
        return _ABSENT


def _problem(rule: Rule, key: str, value: Any, what: str = "") -> str | None:
    if rule.ok(value):
        return None
    expect = f"one of {list(rule.choices())}" if rule.choices else rule.expect
    return f"{key}={value!r}{what} is invalid: expected {expect}. Fix: e.g. {key}={rule.example}"


def config_problems(cfg: Any, imports: bool = True) -> list[str]:
    """Every problem `check_config` would report, one message per bad key (empty when the config is fine).

    With `imports=False` the rules whose choices come from cnnexp's modules (conv_impl, init: they import torch)
    are skipped, so that the common mistakes are reported in milliseconds.
    """
    rules = RULES if imports else tuple(r for r in RULES if r.choices is None)
    layer_rules = LAYER_RULES if imports else tuple(r for r in LAYER_RULES if r.choices is None)
    found: dict[str, str] = {}  # key -> problem
    for r in rules:
        if (v := _select(cfg, r.key)) is not _ABSENT and (p := _problem(r, r.key, v)) is not None:
            found[r.key] = p
    layers = _select(cfg, "model.net.layers")
    if isinstance(layers, list):
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict):
                continue
            name = str(layer.get("_target_", "layer")).rsplit(".", 1)[-1]
            for r in layer_rules:
                key = f"model.net.layers.{i}.{r.key}"
                if r.key in layer and (p := _problem(r, key, layer[r.key], f" ({name})")) is not None:
                    found[key] = p
    # `data.seed: ${oc.select:seed,42}`, `rate: ${model.dropout}`: a value copied from a bad key is reported once
    return [p for key, p in found.items() if _interpolated_from(cfg, key) not in found]


def _interpolated_from(cfg: Any, key: str) -> str | None:
    """The key that `key`'s value is copied from (`${a.b}` or `${oc.select:a.b,...}`), else None."""
    import re

    from omegaconf import OmegaConf

    parent_key, _, leaf = key.rpartition(".")
    try:
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        node = parent._get_node(int(leaf) if leaf.isdigit() else leaf)  # noqa: SLF001
        raw = node._value() if node is not None else None  # noqa: SLF001 - the unresolved "${...}" string
    except Exception:
        return None
    match = re.fullmatch(r"\$\{(?:oc\.select:)?([\w.]+)(?:,[^}]*)?\}", raw) if isinstance(raw, str) else None
    return match.group(1) if match else None


def check_config(cfg: Any) -> None:
    """Raise ConfigError for the first wrong type or value in the composed config (all problems are listed).

    Args:
        cfg: the composed Hydra config (a DictConfig).

    Raises:
        ConfigError: `"<key>=<value> is invalid: expected ... Fix: e.g. <key>=<example>"`, one line per bad key.
    """
    problems = config_problems(cfg, imports=False) or config_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems) if len(problems) == 1 else
                          f"{len(problems)} config values are invalid:\n  " + "\n  ".join(problems))


# -- unknown constructor arguments -----------------------------------------------------------------------------
# Targets whose modules import without lightning (torch only), so their signatures can be read before the run.
SIGNATURE_PREFIXES = ("cnnexp.layers.", "cnnexp.models.", "torch.optim.")
SIGNATURE_NODES = ("optimizer", "scheduler", "model.net", "model.net.layers")


def _signature_params(target: str) -> set[str] | None:
    """The keyword arguments `target` accepts, or None when it takes `**kwargs` or cannot be inspected here."""
    import inspect

    from hydra.utils import get_object

    try:
        obj = get_object(target)
        params = inspect.signature(obj).parameters.values()
    except Exception:  # an unknown target is reported by instantiate, with Hydra's own message
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def _argument_problem(key: str, node: dict, in_list: bool) -> str | None:
    target = node.get("_target_")
    if not isinstance(target, str) or not target.startswith(SIGNATURE_PREFIXES):
        return None
    accepted = _signature_params(target)
    if accepted is None:
        return None
    unknown = [k for k in node if isinstance(k, str) and not k.startswith("_") and k not in accepted]
    if not unknown:
        return None
    name = target.rsplit(".", 1)[-1]
    takes = ", ".join(sorted(a for a in accepted if a not in ("self", "params", "optimizer"))) or "no arguments"
    fix = (f"Fix: remove it (~{key}.{unknown[0]}), or replace the whole list (model.net.layers=[...]): an "
           f"entry replaced with another _target_ keeps the old entry's keys." if in_list else
           f"Fix: remove it (~{key}.{unknown[0]}) or use one of the arguments above.")
    return (f"{key}: {name} has no argument {', '.join(repr(u) for u in unknown)} (it takes {takes}). {fix}")


def argument_problems(cfg: Any) -> list[str]:
    """Arguments that the layers, the network, the optimizer and the scheduler do not accept (e.g. `optimizer.lrr`,
    or `rate` left over in `model.net.layers.7` after replacing a Dropout with a MaxPool2D).

    Reads the constructors' signatures, so it imports torch (not lightning); run it after `config_problems`.
    """
    problems = []
    for key in SIGNATURE_NODES:
        value = _select(cfg, key)
        if isinstance(value, dict):
            problems.append(_argument_problem(key, value, in_list=False))
        elif isinstance(value, list):
            problems += [_argument_problem(f"{key}.{i}", v, in_list=True) for i, v in enumerate(value)
                         if isinstance(v, dict)]
    return [p for p in problems if p is not None]


def check_arguments(cfg: Any) -> None:
    """Raise ConfigError listing every argument a constructor would refuse (see `argument_problems`)."""
    problems = argument_problems(cfg)
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else
                          f"{len(problems)} config entries have unknown arguments:\n  " + "\n  ".join(problems))
