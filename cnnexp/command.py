"""The `cnnexp` command (installed by pip): one name for every entry point, `train` the default.

    cnnexp [train] [overrides]       python -m cnnexp             train from the composed Hydra config
    cnnexp evaluate ckpt_path=...    python -m cnnexp.evaluate    test a checkpoint, or classify images
    cnnexp report SWEEP_DIR          python -m cnnexp.report      tabulate and plot a sweep
    cnnexp export ...                python -m cnnexp.export
    cnnexp rerun ...                 python -m cnnexp.rerun
    cnnexp plan ...                  python -m cnnexp.plan

A subcommand runs its module exactly as `python -m` does (`runpy`, with the rest of the command line as the
module's arguments), so each keeps its own options and errors; a subcommand whose module this version lacks
is one `error:` line. `cnnexp --help` lists the subcommands. `cnnexp SUBCOMMAND --help` is the module's own help
for train (config groups and where each option comes from), evaluate and report, and the module's docstring
(its usage and options) for the others.
"""

from __future__ import annotations

import importlib
import importlib.util
import runpy
import sys
from collections.abc import Sequence

from cnnexp.cli import EXIT_USER_ERROR

# subcommand -> (module run as `python -m`, one line of help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("cnnexp", "train from the composed Hydra config (the default; `cnnexp train --help`)"),
    "evaluate": ("cnnexp.evaluate", "test a checkpoint, or classify images with it"),
    "report": ("cnnexp.report", "tabulate and plot a sweep folder"),
    "export": ("cnnexp.export", "export a checkpoint for use outside cnnexp"),
    "rerun": ("cnnexp.rerun", "run a saved run's config again"),
    "plan": ("cnnexp.plan", "show what a command line would run, without running it"),
}
DEFAULT = "train"
HELP_FLAGS = ("-h", "--help", "help")
OWN_HELP = ("train", "evaluate", "report")  # their modules print their own --help; the others' docstring is shown


def available(module: str) -> bool:
    """True when `module` can be run with `python -m` in this installation."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def overview() -> str:
    """`cnnexp --help`: the subcommands, and which of them this installation has."""
    lines = ["usage: cnnexp [SUBCOMMAND] [ARGS ...]      (no subcommand: train)", "", "subcommands:"]
    for name, (module, text) in SUBCOMMANDS.items():
        missing = "" if available(module) else "  [not in this version]"
        lines.append(f"  {name:<9} {text}{missing}")
    lines += ["", "`cnnexp SUBCOMMAND --help` shows a subcommand's options; each is also `python -m MODULE`.",
              "examples:", "  cnnexp                                  # the lecture CNN on load_digits",
              "  cnnexp +experiment=seed_flowers data.download=true",
              "  cnnexp evaluate ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt"]
    return "\n".join(lines)


def split(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """`(subcommand, its arguments)`; None for `cnnexp --help`. Anything else (overrides, -m, --cfg) is train's."""
    if argv and argv[0] in SUBCOMMANDS:
        return argv[0], list(argv[1:])
    if len(argv) == 1 and argv[0] in HELP_FLAGS:
        return None, []
    return DEFAULT, list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `cnnexp ...`: dispatch to the subcommand's module; returns the exit status."""
    name, args = split(sys.argv[1:] if argv is None else argv)
    if name is None:
        print(overview())
        return 0
    module = SUBCOMMANDS[name][0]
    if not available(module):
        print(f"error: `cnnexp {name}` is not in this version of cnnexp (no module {module}). Fix: upgrade "
              "cnnexp, or see `cnnexp --help` for the subcommands it has.", file=sys.stderr)
        return EXIT_USER_ERROR
    if name not in OWN_HELP and len(args) == 1 and args[0] in HELP_FLAGS[:2]:
        print((importlib.import_module(module).__doc__ or f"{module}: no help.").strip())
        return 0
    sys.argv = [f"cnnexp {name}", *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)  # its sys.exit(...) is the command's exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
