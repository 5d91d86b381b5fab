"""Benchmark torch.compile on the lecture model: compile time and compiled vs eager training-step time, for the
custom conv and pool (cnnexp's torch.library ops) and for torch's native conv (conv_impl=torch), side by side.

A training step is forward, cross-entropy, backward and Adam on the lecture's KerasSequential (Rescaling,
3x[Conv 3x3 same ReLU + MaxPool], Flatten, Dense 128, Dense 5). For each conv_impl: the eager net and
`torch.compile(net, fullgraph=True, backend=...)` of a copy (compile time = the first compiled step, minus one eager
step); then the steps of all variants are timed round-robin and medians reported.

    python scripts/bench_compile.py                       # 32x32 b128 and 90x90 b32, inductor
    python scripts/bench_compile.py --quick --backend aot_eager

Prints a table of ratios (compiled / eager step time) and writes JSON (--out).
"""

from __future__ import annotations

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:  # as bench_conv.py, see there
    os.environ["GOMP_SPINCOUNT"] = "10000"

import argparse  # noqa: E402
import copy  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnnexp.bench_results import write_results  # noqa: E402
from cnnexp.layers import Conv2D, Dense, Flatten, MaxPool2D, Rescaling  # noqa: E402
from cnnexp.models import KerasSequential  # noqa: E402
from cnnexp.provenance import cpu_model  # noqa: E402

SHAPES = {"32x32 b128": (128, 3, 32, 32), "90x90 b32": (32, 3, 90, 90)}
QUICK_SHAPES = {"32x32 b16": (16, 3, 32, 32)}


def lecture_net(input_shape, conv_impl: str) -> KerasSequential:
    convs = []
    for filters in (16, 32, 64):
        convs += [Conv2D(filters, 3, padding="same", activation="relu"), MaxPool2D()]
    layers = [Rescaling(1 / 255), *convs, Flatten(), Dense(128, activation="relu"), Dense(None)]
    torch.manual_seed(0)
    return KerasSequential(layers, input_shape, 5, conv_impl=conv_impl)


def make_step(net, x, y):
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    return step


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(shape_name, batch_shape, impls, backend, repeats) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch_shape, generator=gen) * 255
    y = torch.randint(0, 5, (batch_shape[0],), generator=gen)
    steps, compile_s = {}, {}
    for impl in impls:
        eager = lecture_net(batch_shape[1:], impl)
        compiled = copy.deepcopy(eager)
        compiled.compile(fullgraph=True, backend=backend)
        steps[f"{impl} eager"] = make_step(eager, x, y)
        steps[f"{impl} compiled"] = make_step(compiled, x, y)
        eager_first = timed(steps[f"{impl} eager"])
        compile_s[impl] = timed(steps[f"{impl} compiled"]) - eager_first
    for step in steps.values():  # warm-up
        step()
    times = {k: [] for k in steps}
    for _ in range(repeats):
        for k, step in steps.items():
            times[k].append(timed(step))
    rows = []
    for k, ts in times.items():
        impl, mode = k.split()
        med = statistics.median(ts)
        q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [med] * 3
        rows.append({"shape": shape_name, "impl": impl, "mode": mode, "median_s": med, "iqr_rel": (q[2] - q[0]) / med,
                     "compile_s": compile_s[impl] if mode == "compiled" else None})
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'shape':12} {'conv_impl':9} {'eager ms':>9} {'compiled ms':>12} {'compiled/eager':>15} "
             f"{'compile s':>10}"]
    by = {(r["shape"], r["impl"], r["mode"]): r for r in rows}
    for shape, impl in dict.fromkeys((r["shape"], r["impl"]) for r in rows):
        e, c = by[(shape, impl, "eager")], by[(shape, impl, "compiled")]
        lines.append(f"{shape:12} {impl:9} {e['median_s'] * 1e3:9.1f} {c['median_s'] * 1e3:12.1f} "
                     f"{c['median_s'] / e['median_s']:15.2f} {c['compile_s']:10.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one small shape, few repeats (smoke run)")
    p.add_argument("--backend", default="inductor", help="torch.compile backend (inductor, aot_eager, ...)")
    p.add_argument("--impls", default="custom,torch", help="comma list of conv_impl values")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per variant")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", default="bench-results/bench_compile.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeats = args.repeats or (3 if args.quick else 15)
    load_before = os.getloadavg()
    rows = []
    for name, shape in shapes.items():
        rows += bench(name, shape, args.impls.split(","), args.backend, repeats)
    meta = {"torch": torch.__version__, "backend": args.backend, "threads": torch.get_num_threads(),
            "cpu": cpu_model(), "load_avg_before": load_before,
            "load_avg_after": os.getloadavg()}
    print(f"backend {args.backend}, threads {meta['threads']}, cpu {meta['cpu']}, load average "
          f"{load_before[0]:.1f} before, {meta['load_avg_after'][0]:.1f} after")
    print(table(rows))
    write_results(args.out, meta, rows)


if __name__ == "__main__":
    main()
