"""What the benchmark scripts (`scripts/bench_*.py`) share: the freed-memory switch and the JSON results file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cnnexp.cpu_memory import retain_freed_memory


def add_memory_flag(parser: argparse.ArgumentParser) -> None:
    """`--system-malloc`: time under glibc's defaults instead of the retained memory `python -m cnnexp` uses."""
    parser.add_argument("--system-malloc", action="store_true",
                        help="keep glibc's defaults (default: retain freed memory, as `python -m cnnexp` does)")


def apply_memory_flag(args: argparse.Namespace) -> bool:
    """Retain freed memory unless `--system-malloc`; True when it is retained."""
    return not args.system_malloc and retain_freed_memory()


def memory_note(retained: bool) -> str:
    """The words each script prints about the allocator its numbers were measured under."""
    return f"freed memory {'retained' if retained else 'returned (glibc defaults)'}"


def write_results(out: str | Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Write `{"meta": meta, "rows": rows}` to `out` (folders created), print its path, return it."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"\nwrote {path}")
    return path
