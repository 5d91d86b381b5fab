"""`python -m cnnexp.rerun <run folder> [overrides...]`: repeat a run in a new run folder and compare its metrics.

The new run is composed from cnnexp's configs with the original run's command-line overrides
(`<run>/.hydra/overrides.yaml`) followed by the new ones (a new value for a key replaces the old one), and the seed
the original used (from its `run.json` when its config said `seed: null`). It lands in a new folder under
`<paths.log_dir>/runs/`, like any run: no saved absolute `output_dir` is reused, and pointing `hydra.run.dir` or
`paths.output_dir` at an existing run folder is refused. The recomposed config is compared with the original's
`.hydra/config.yaml` (a warning lists the keys that differ, e.g. after cnnexp's default configs changed) and
checked against the `_target_` allowlist (`cnnexp.trusted_config`) before anything runs. At the end the new and
the original final metrics are printed side by side (identical on the CPU with `trainer.deterministic=true`).

Examples:
    python -m cnnexp.rerun outputs/runs/2026-12-02_10-00-00-000000_123-abcd
    python -m cnnexp.rerun outputs/runs/<run> trainer.max_epochs=5 tags=[rerun]
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnexp.cli import run_cli
from cnnexp.errors import ConfigError
from cnnexp.run_folders import HYDRA_CONFIG, HYDRA_OVERRIDES, is_run_dir

USAGE = "usage: python -m cnnexp.rerun <run folder> [key=value ...]"
# Overrides that name a run's own folder: never carried over (a rerun gets a new folder) nor accepted.
FOLDER_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", "paths.output_dir",
               "hydra.runtime.output_dir")
IGNORED_IN_DIFF = ("paths", "hydra")  # differ between any two runs


def override_key(override: str) -> str:
    """`+a.b=1` -> `a.b`, `~a` -> `a`, `hydra/launcher=x` -> `hydra/launcher`."""
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(original: Sequence[str], new: Sequence[str]) -> list[str]:
    """The original overrides, minus folder keys and keys that `new` sets again, then `new`."""
    replaced = {override_key(o) for o in new}
    kept = [o for o in original if override_key(o) not in replaced and override_key(o) not in FOLDER_KEYS]
    return [*kept, *new]


def load_original(run_dir: Path) -> tuple[list[str], Any]:
    """The original run's overrides and composed config; ConfigError when `run_dir` is not a run folder."""
    from omegaconf import OmegaConf

    if not (run_dir / HYDRA_OVERRIDES).is_file() or not (run_dir / HYDRA_CONFIG).is_file():
        raise ConfigError(f"{run_dir} is not a run folder: no {HYDRA_OVERRIDES} / {HYDRA_CONFIG}. Fix: pass a folder "
                          f"under outputs/runs/ (or a sweep job's folder under outputs/multirun/<sweep>/<n>).")
    overrides = OmegaConf.load(run_dir / HYDRA_OVERRIDES)
    return [str(o) for o in overrides], OmegaConf.load(run_dir / HYDRA_CONFIG)


def refuse_folder_overrides(new: Sequence[str], run_dir: Path) -> None:
    """A rerun never writes into an existing run folder (the original's or another's)."""
    for override in new:
        key = override_key(override)
        if key in FOLDER_KEYS and "=" in override:
            target = Path(override.split("=", 1)[1]).expanduser()
            if is_run_dir(target) or target.resolve() == run_dir.resolve() or (target / ".hydra").exists():
                raise ConfigError(f"{override}: {target} is an existing run's folder; a rerun never writes into "
                                  f"another run's folder. Fix: drop {key} (the rerun gets a new folder under "
                                  f"outputs/runs/).")


def refuse_logging_overrides(original: Sequence[str], run_dir: Path) -> None:
    """Saved overrides may not reconfigure logging (`logging.config` builds `()` factories: it could run code)."""
    bad = [o for o in original if override_key(o).startswith(("hydra.job_logging", "hydra.hydra_logging",
                                                                "hydra/job_logging", "hydra/hydra_logging"))
           or "()" in override_key(o)]
    if bad:
        raise ConfigError(f"refused to rerun {run_dir}: its overrides reconfigure logging ({', '.join(bad)}), which "
                          f"could run code. Fix: remove them from {run_dir / HYDRA_OVERRIDES} if you trust them.")


def compose(overrides: Sequence[str]) -> Any:
    """The config (with its `hydra` node) that `python -m cnnexp <overrides>` would run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="cnnexp.conf", version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def config_differences(composed: Any, saved: Any, new: Sequence[str]) -> list[str]:
    """Dotted keys whose values differ between the recomposed and the saved config (not counting new overrides)."""
    from omegaconf import OmegaConf

    def flat(node: Any, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
        if items is None:
            return {prefix: node}
        for k, v in items:
            out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out

    a = flat({k: v for k, v in OmegaConf.to_container(composed, resolve=False).items() if k not in IGNORED_IN_DIFF})
    b = flat({k: v for k, v in OmegaConf.to_container(saved, resolve=False).items() if k not in IGNORED_IN_DIFF})
    changed = {override_key(o) for o in new}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)
                  and not any(k == c or k.startswith(c + ".") for c in changed))


def original_metrics(run_dir: Path) -> dict[str, float]:
    """The original's final metrics: from run.json, else the last values of csv/metrics.csv (older runs)."""
    from cnnexp import provenance

    info = provenance.read(run_dir)
    if info and info.get("metrics"):
        return {k: (math.nan if v is None else float(v)) for k, v in info["metrics"].items()}
    last: dict[str, float] = {}
    for path in sorted(run_dir.glob("**/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                last.update({k: float(v) for k, v in row.items() if k not in ("epoch", "step") and v not in ("", None)})
    return last


def side_by_side(new: dict[str, float], old: dict[str, float]) -> str:
    """A table of every metric in either run: name, rerun, original, and whether they are equal."""
    names = sorted(set(new) | set(old))
    width = max([len(n) for n in names] + [6])
    lines = [f"{'metric':<{width}}  {'rerun':>12}  {'original':>12}"]
    for name in names:
        a, b = new.get(name, math.nan), old.get(name, math.nan)
        same = "" if (math.isnan(a) or math.isnan(b)) else ("  same" if a == b else f"  diff {a - b:+.2e}")
        lines.append(f"{name:<{width}}  {a:>12.6f}  {b:>12.6f}{same}")
    return "\n".join(lines)


def plan(run_dir: Path, new: Sequence[str]) -> tuple[list[str], Path]:
    """The overrides of the rerun (ending with its new `hydra.run.dir`) and that folder; nothing is written."""
    from omegaconf import OmegaConf

    from cnnexp import provenance
    from cnnexp.config_checks import check_arguments, check_config
    from cnnexp.trusted_config import check_targets

    refuse_folder_overrides(new, run_dir)
    original, saved = load_original(run_dir)
    refuse_logging_overrides(original, run_dir)
    overrides = merge_overrides(original, new)
    info = provenance.read(run_dir)
    if OmegaConf.select(saved, "seed", default=None) is None and info and info.get("seed") is not None \
            and not any(override_key(o) == "seed" for o in new):
        overrides.append(f"seed={info['seed']}")  # the seed a `seed: null` run drew
    composed = compose(overrides)
    check_targets(composed, run_dir / HYDRA_OVERRIDES)
    check_config(composed)
    check_arguments(composed)
    differ = config_differences(composed, saved, new)
    if differ:
        print(f"warning: the recomposed config differs from {run_dir / HYDRA_CONFIG} on {', '.join(differ[:10])}"
              f"{' ...' if len(differ) > 10 else ''} (cnnexp's configs changed since that run).", file=sys.stderr)
    new_dir = Path(str(composed.hydra.run.dir))
    if is_run_dir(new_dir) or new_dir.resolve() == run_dir.resolve():
        raise ConfigError(f"the rerun's folder {new_dir} is an existing run's folder. Fix: drop hydra.run.dir.")
    return [*overrides, f"hydra.run.dir={new_dir}"], new_dir


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Rerun; print the metrics side by side; return the new run's metrics."""
    from cnnexp import provenance

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or "=" in argv[0]:
        raise ConfigError(f"the first argument must be a run folder.\n{USAGE}")
    run_dir = Path(argv[0]).expanduser()
    overrides, new_dir = plan(run_dir, argv[1:])
    print(f"rerun of {run_dir} in {new_dir}", flush=True)
    os.environ[provenance.RERUN_ENV] = str(run_dir.resolve())
    from cnnexp.__main__ import main as cnnexp_main

    saved_argv = sys.argv
    sys.argv = [saved_argv[0], *overrides]
    try:
        cnnexp_main()
    finally:
        sys.argv = saved_argv
        os.environ.pop(provenance.RERUN_ENV, None)
    info = provenance.read(new_dir) or {}
    new = {k: (math.nan if v is None else float(v)) for k, v in (info.get("metrics") or {}).items()}
    print(side_by_side(new, original_metrics(run_dir)), flush=True)
    return new


if __name__ == "__main__":
    run_cli(main)
