"""How the custom conv's cost grows with the work: training-step ratios and peak memory over image and batch sizes.

The lecture model's training step (forward, backward, Adam; the same step as scripts/bench_conv.py, reused from
it) for every image side in `--sizes` and batch size in `--batches`, custom vs native default layout vs native
channels_last, interleaved in one run, medians. Peak extra memory of a step per implementation is measured in a
fresh process each (bench_conv's memory worker). Prints a table of ratios and writes JSON.

    python scripts/bench_scaling.py                        # 32..256 px x batch 8..128 (several minutes)
    python scripts/bench_scaling.py --sizes 32,64 --batches 8 --repeats 2 --no-memory   # smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from pathlib import Path

from cnnexp.bench_results import add_memory_flag, apply_memory_flag, memory_note, write_results
from cnnexp.provenance import cpu_model

HERE = Path(__file__).resolve().parent


def load_bench_conv():
    """scripts/bench_conv.py as a module (its step, timing and memory worker are the ones measured here)."""
    spec = importlib.util.spec_from_file_location("bench_conv", HERE / "bench_conv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


IMPLS = ("custom", "torch", "torch_cl")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="32,64,128,180,256", help="comma list of image sides")
    p.add_argument("--batches", default="8,32,128", help="comma list of batch sizes")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per implementation (median)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: one per core)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    add_memory_flag(p)
    p.add_argument("--out", default="bench-results/bench_scaling.json")
    args = p.parse_args(argv)

    bench = load_bench_conv()  # sets the OpenMP wait policy before torch loads, as bench_conv does
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    retained = apply_memory_flag(args)  # the memory workers keep glibc's defaults
    device = torch.device("cpu")
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    load_before = os.getloadavg()
    rows = []
    print(f"{'image':>6} {'batch':>5} " + " ".join(f"{k + ' ms':>11}" for k in IMPLS)
          + f" {'custom/torch':>12} {'custom/torch_cl':>15} {'mem custom/torch':>16} {'mem custom/cl':>13}")
    for side in sizes:
        for batch in batches:
            shape = (batch, 3, side, side)
            steps = {k: bench.make_step(k, shape, device) for k in IMPLS}
            timed = bench.interleaved(steps, args.repeats, 1, device)
            row = {"side": side, "batch": batch, **{f"{k}_ms": timed[k]["median_s"] * 1e3 for k in IMPLS}}
            if not args.no_memory:
                mem = {r["impl"]: r["peak_extra_mib"] for r in bench.bench_memory({"s": shape}, list(IMPLS), device)}
                row.update({f"{k}_peak_mib": mem[k] for k in IMPLS if k in mem})
            rows.append(row)
            speed = lambda ref: row[f"{ref}_ms"] / row["custom_ms"]  # images/s ratio custom / ref
            memory = lambda ref: (f"{row['custom_peak_mib'] / row[f'{ref}_peak_mib']:.2f}"
                                  if f"{ref}_peak_mib" in row else "")
            print(f"{side:>6} {batch:>5} " + " ".join(f"{row[f'{k}_ms']:11.1f}" for k in IMPLS)
                  + f" {speed('torch'):12.2f} {speed('torch_cl'):15.2f} {memory('torch'):>16} "
                  f"{memory('torch_cl'):>13}", flush=True)
    cpu = cpu_model()
    print(f"CPU {cpu}, threads {torch.get_num_threads()}, custom = {bench.custom_conv_path(device)}, "
          f"{memory_note(retained)}, "
          f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    meta = {"cpu": cpu, "threads": torch.get_num_threads(), "retain_freed_memory": retained, "torch": torch.__version__,
            "python": platform.python_version(), "repeats": args.repeats,
            "argv": sys.argv[1:] if argv is None else argv, "load_avg_before": load_before,
            "load_avg_after": os.getloadavg()}
    write_results(args.out, meta, rows)


if __name__ == "__main__":
    main()
