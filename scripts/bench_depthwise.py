"""Benchmark cnnexp's depthwise and grouped conv2d against torch's native F.conv2d(groups=...), side by side.

Rows are MobileNet-style depthwise layers (3x3, groups = C_in, multiplier 1, strides 1 and 2) and one grouped
layer, forward and forward+backward, on NCHW and channels_last inputs (the custom conv's outputs are
channels_last, so that is what a depthwise layer after a conv reads). Timed round-robin in one run
(`bench_conv.interleaved`, medians); prints the ratio native / custom time (1.0 = as fast as torch, 0.5 = half
its speed) and writes JSON (--out).

    python scripts/bench_depthwise.py            # a few minutes on a 2-core CPU
    python scripts/bench_depthwise.py --quick    # smoke run
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conv import OMP_ENV, interleaved, to_format  # noqa: E402  (sets OpenMP waiting before torch loads)

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnnexp.bench_results import write_results  # noqa: E402
from cnnexp.functional import conv2d  # noqa: E402
from cnnexp.provenance import cpu_model  # noqa: E402

# name -> (N, C_in, H, W, C_out, groups, stride)
LAYERS = {
    "dw 32ch 56x56 s1": (16, 32, 56, 56, 32, 32, 1),
    "dw 64ch 56x56 s2": (16, 64, 56, 56, 64, 64, 2),
    "dw 128ch 28x28 s1": (16, 128, 28, 28, 128, 128, 1),
    "dw x2 16ch 32x32 s1": (32, 16, 32, 32, 32, 16, 1),
    "grouped g4 64ch 28x28": (16, 64, 28, 28, 64, 4, 1),
}
QUICK_LAYERS = {"dw 16ch 16x16 s1": (4, 16, 16, 16, 16, 16, 1), "grouped g2 8ch 8x8": (4, 8, 8, 8, 8, 2, 1)}
IMPLS = {"custom": conv2d, "torch": F.conv2d}


def bench(layers: dict, repeats: int) -> list[dict]:
    rows = []
    for name, (n, c, h, w, c_out, groups, stride) in layers.items():
        for channels_last in (False, True):
            x = to_format(torch.randn(n, c, h, w), channels_last).requires_grad_()
            wt = torch.randn(c_out, c // groups, 3, 3).requires_grad_()
            b = torch.zeros(c_out, requires_grad=True)
            for mode in ("fwd", "fwd+bwd"):

                def make(fn, mode=mode):
                    if mode == "fwd":
                        return lambda: fn(x.detach(), wt.detach(), b.detach(), stride, 1, 1, groups)
                    return lambda: fn(x, wt, b, stride, 1, 1, groups).sum().backward()

                res = interleaved({k: make(fn) for k, fn in IMPLS.items()}, repeats, 1, torch.device("cpu"))
                rows.append({"layer": name, "channels_last": channels_last, "mode": mode,
                             "custom_s": res["custom"]["median_s"], "torch_s": res["torch"]["median_s"],
                             "ratio_torch_over_custom": res["torch"]["median_s"] / res["custom"]["median_s"]})
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'layer':<24}{'layout':<15}{'mode':<9}{'custom ms':>10}{'torch ms':>10}{'torch/custom':>14}"]
    for r in rows:
        layout = "channels_last" if r["channels_last"] else "NCHW"
        lines.append(f"{r['layer']:<24}{layout:<15}{r['mode']:<9}{r['custom_s'] * 1e3:>10.2f}"
                     f"{r['torch_s'] * 1e3:>10.2f}{r['ratio_torch_over_custom']:>14.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, 3 repeats (smoke run)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default="bench-results/bench_depthwise.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 15)
    load_before = os.getloadavg()
    rows = bench(QUICK_LAYERS if args.quick else LAYERS, repeats)
    meta = {"load_avg_before": load_before, "load_avg_after": os.getloadavg(), "cpu": cpu_model(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "omp_env": OMP_ENV,
            "python": platform.python_version(), "repeats": repeats, "quick": args.quick}
    print(f"CPU: {meta['cpu']}, {meta['threads']} threads, torch {meta['torch']}, {repeats} repeats (medians), "
          f"load average {load_before[0]:.1f} before, {meta['load_avg_after'][0]:.1f} after")
    print(table(rows))
    write_results(args.out, meta, rows)


if __name__ == "__main__":
    main()
