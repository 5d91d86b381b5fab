"""Which folder each config option comes from: the `--help` listing and errors that name a config's file.

Hydra reads `group/option` from the first entry of its search path that has it (see `cnnexp.conf.search_path`
for the order); `option_table` applies the same rule to say, for every option, the folder it is read from and
which entries it shadows. The running app's search path is `hydra.runtime.config_sources`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.object_type import ObjectType
from omegaconf import DictConfig, OmegaConf

from cnnexp.conf.search_path import CWD_PROVIDER, ENV_PROVIDER, ENV_VAR

SKIPPED_PROVIDERS = ("hydra", "schema")
LABELS = {"main": "packaged", CWD_PROVIDER: "./conf", ENV_PROVIDER: f"${ENV_VAR}",
          "hydra.searchpath in command-line": "hydra.searchpath", "hydra.searchpath in main": "hydra.searchpath",
          "command-line": "--config-dir"}
APPENDED_GROUPS = ("experiment", "hparams_search")  # not in the primary defaults: `+group=option`


@dataclass
class Option:
    """One option of a config group: the source it is read from, and the later sources it shadows."""

    name: str
    source: Any  # hydra ConfigSource
    shadows: list[Any] = field(default_factory=list)


def label(source: Any) -> str:
    """A short name for a source: packaged, ./conf, $CNNEXP_CONFIG_DIR, hydra.searchpath, ..."""
    return LABELS.get(source.provider, source.provider)


def location(source: Any) -> str:
    """Where a source's files are: a folder, or the package for pkg:// sources."""
    return source.path if source.scheme() not in ("pkg", "structured") else f"{source.scheme()}://{source.path}"


def runtime_sources(infos: Any = None) -> list[Any]:
    """The app's config sources in search order (Hydra's own and structured configs left out).

    `infos` is `hydra.runtime.config_sources` (read from the running app's HydraConfig when None).
    """
    from hydra._internal.sources_registry import SourcesRegistry

    if infos is None:
        from hydra.core.hydra_config import HydraConfig

        infos = HydraConfig.get().runtime.config_sources
    sources = []
    for info in infos:
        if info.provider in SKIPPED_PROVIDERS:
            continue
        source = SourcesRegistry.instance().resolve(info.schema)(info.provider, f"{info.schema}://{info.path}")
        if source.available():
            sources.append(source)
    return sources


def _groups(source: Any, parent: str = "") -> list[str]:
    """Every config group of a source below `parent` (hydra/ left out: Hydra's own settings)."""
    found = []
    for name in source.list(parent, ObjectType.GROUP):
        group = f"{parent}/{name}" if parent else name
        if group == "hydra":
            continue
        found.append(group)
        found.extend(_groups(source, group))
    return found


def option_table(sources: list[Any]) -> dict[str, list[Option]]:
    """`{group: [Option]}` sorted by name; an option's `source` is the first source in order that has it."""
    table: dict[str, dict[str, Option]] = {}
    for source in sources:
        for group in _groups(source):
            options = table.setdefault(group, {})
            for name in source.list(group, ObjectType.CONFIG):
                if name in options:
                    options[name].shadows.append(source)
                else:
                    options[name] = Option(name, source)
    return {group: [options[n] for n in sorted(options)] for group, options in sorted(table.items()) if options}


def config_file(group: str, name: str, sources: list[Any] | None = None) -> str | None:
    """The file Hydra reads for `group=name` (a path, or pkg://... for packaged configs), None if unknown."""
    for source in runtime_sources() if sources is None else sources:
        if source.is_config(f"{group}/{name}"):
            return f"{location(source).rstrip('/')}/{group}/{name}.yaml"
    return None


def _fill(words: list[str], head: str, width: int) -> list[str]:
    """`head` then the comma-separated words, wrapped between words (an option and its [tags] stay together)."""
    lines, line = [], head
    for i, word in enumerate(words):
        word += "," if i < len(words) - 1 else ""
        if line.strip() and len(line) + 1 + len(word) > width:
            lines.append(line.rstrip())
            line = " " * len(head)
        line += word if line.isspace() or line == head else " " + word
    return lines + [line.rstrip()]


def format_options(sources: list[Any] | None = None, choices: Any = None, width: int = 100) -> str:
    """The `--help` listing: each group's options, `*` on the chosen one, `[where]` on those not packaged."""
    from hydra.core.hydra_config import HydraConfig

    sources = runtime_sources() if sources is None else sources
    if choices is None and HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
    choices = choices or {}
    lines = []
    for group, options in option_table(sources).items():
        words = []
        for option in options:
            word = option.name + ("*" if choices.get(group) == option.name else "")
            tags = [] if label(option.source) == "packaged" else [label(option.source)]
            tags += [f"replaces {label(s)}" for s in option.shadows]
            words.append(word + (f" [{', '.join(tags)}]" if tags else ""))
        head = f"{'+' if group in APPENDED_GROUPS else ''}{group}="
        lines += _fill(words, f"{head:<17}", width)
    lines.append("")
    lines.append("Read from (in this order; the first folder that has group/option.yaml wins):")
    lines += [f"  {label(s):<17}{location(s)}" for s in sources]
    return "\n".join(lines)


def _targets(node: Any, key: str = "") -> list[tuple[str, str]]:
    """`[(key, target)]` for every `_target_` string in a plain (`OmegaConf.to_container`) config."""
    found = []
    if isinstance(node, dict):
        for name, child in node.items():
            child_key = f"{key}.{name}" if key else str(name)
            if name == "_target_" and isinstance(child, str):
                found.append((child_key, child))
            else:
                found.extend(_targets(child, child_key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(_targets(child, f"{key}[{index}]"))
    return found


def files_mentioning(text: str) -> list[str]:
    """The chosen config files (this run's `hydra.runtime.choices`) whose text contains `text`."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    sources = runtime_sources()
    found = []
    for group, name in HydraConfig.get().runtime.choices.items():
        if not isinstance(name, str) or group.startswith("hydra"):
            continue
        path = config_file(group, name, sources)
        if path and not path.startswith("pkg://") and text in Path(path).read_text(encoding="utf-8"):
            found.append(path)
    return found


def check_targets_import(cfg: DictConfig) -> None:
    """Raise a ConfigError naming the key and the file of the first `_target_` that cannot be imported."""
    from hydra._internal.utils import _locate

    from cnnexp.errors import ConfigError

    for key, target in _targets(OmegaConf.to_container(cfg, resolve=False)):
        try:
            _locate(target)
        except ImportError as error:
            files = files_mentioning(target)
            where = f" (set in {', '.join(files)})" if files else ""
            reason = str(error).splitlines()[0]
            raise ConfigError(f"{key}={target}{where} cannot be imported: {reason}. Fix: spell the class or "
                              "function by its full module path, e.g. cnnexp.layers.Conv2D.") from None
