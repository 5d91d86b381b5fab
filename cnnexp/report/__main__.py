"""`python -m cnnexp.report SWEEP_DIR [--out DIR] [--metric TAG] [--minimize]`: tabulate and plot a sweep.

Prints the markdown table and the paths of `report.md`, `report.csv` and `val_acc.png`; exits 2 with one
`error: ...` line when the folder holds no runs.
"""

from __future__ import annotations

import argparse
import sys

from cnnexp.errors import CnnexpError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cnnexp.report",
        description="Tabulate and plot a sweep: report.md, report.csv (swept parameters vs metrics) and val_acc.png.",
    )
    parser.add_argument("sweep_dir", help="a sweep folder (outputs/multirun/<time>) or one run folder")
    parser.add_argument("--out", default=None, help="where to write the report files (default: the sweep folder)")
    parser.add_argument("--metric", default=None, help="sort by this tag (default: the runs' optimized_metric)")
    parser.add_argument(
        "--minimize", action=argparse.BooleanOptionalAction, default=None,
        help="smallest first (default: only for metrics named *loss*)",
    )
    parser.add_argument("--curve", default="val/acc", help="the scalar plotted for every run (default: val/acc)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from cnnexp.report.build import build_report

    try:
        maximize = None if args.minimize is None else not args.minimize
        report = build_report(args.sweep_dir, args.out, args.metric, maximize, args.curve)
    except CnnexpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.markdown)
    for path in (report.markdown_path, report.csv_path, report.plot_path):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
