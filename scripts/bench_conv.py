"""Benchmark the custom conv2d against the naive loop and torch's native conv (default and channels_last).

Measured side by side in one run, implementations interleaved round-robin, medians reported:
  1. each conv layer of the lecture's model (3->16, 16->32, 32->64; 3x3 'same'), forward and forward+backward,
     at batch 32 on 180x180x3 and at batch 128 on 32x32x3 (naive only on the small shape);
  2. a whole training step (forward, backward, Adam) of the seed model: Rescaling, 3x[conv+ReLU+2x2 max pool],
     Flatten (Keras H, W, C order), Dense 128 ReLU, Dense 5; built here from plain tensors and cnnexp.functional;
     the custom rows run each conv + ReLU + pool as cnnexp's KerasSequential does (`models.fusion`: the ReLU
     after the pool, and conv + pool as one `conv2d_max_pool` op where it applies), the others as written;
  3. peak extra memory of one training step per implementation, each in a fresh subprocess
     (RSS high-water mark on CPU, torch.cuda.max_memory_allocated on CUDA).
Prints the CPU model and tables of ratios (custom / native images per second; for the layers also GFLOP/s, the
multiply-adds x 2 of the directions run, so the custom kernel reads against oneDNN's, torch_cl) and writes JSON
(--out).

    python scripts/bench_conv.py            # full run (about 10 minutes on a 2-core CPU)
    python scripts/bench_conv.py --quick    # smoke run

Threads: torch's default intra-op thread count (one per core) unless --threads is given. OpenMP waiting, the
same for every implementation: unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is already in the environment,
GOMP_SPINCOUNT=10000 (torch's libgomp: an idle worker thread spins ~10^4 iterations, then sleeps). Measured
on the 2-core benchmark machine: OpenMP's default long spin collapses every implementation, custom most (it
runs hundreds of small parallel regions per step), when other processes share the cores; OMP_WAIT_POLICY=
passive avoids that but makes every parallel region wake a sleeping thread, which slows all of them (native
32x32 b128 train step 15 -> 23 ms, custom 21 -> 40 ms); the bounded spin is within noise of the default on a
quiet machine and does not collapse under load. Set either variable to measure another policy. The
settings are printed and saved in the JSON.
"""

from __future__ import annotations

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:  # before torch loads OpenMP
    os.environ["GOMP_SPINCOUNT"] = "10000"  # bounded spin-wait for every implementation; see above
OMP_ENV = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ}

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnnexp.bench_results import add_memory_flag, apply_memory_flag, memory_note, write_results  # noqa: E402
from cnnexp.functional import (  # noqa: E402
    conv2d, conv2d_max_pool, conv2d_naive, conv2d_torch, kernels, max_pool2d, planner,
)
from cnnexp.functional.conv_pool import fusable  # noqa: E402
from cnnexp.provenance import cpu_model  # noqa: E402

CHANNELS = (16, 32, 64)
CLASSES, HIDDEN = 5, 128
SHAPES = {"180x180 b32": (32, 3, 180, 180), "32x32 b128": (128, 3, 32, 32)}
QUICK_SHAPES = {"90x90 b8": (8, 3, 90, 90), "32x32 b16": (16, 3, 32, 32)}


def conv2d_gemm_path(*args, **kwargs):
    """cnnexp's conv2d with the compiled kernel off: the blocked im2col + GEMM path (CUDA's path, and the
    CPU fallback), for a side-by-side comparison in the same run."""
    with kernels.disabled():
        return conv2d(*args, **kwargs)


# name -> (conv function, channels_last, pool function)
IMPLS = {
    "custom": (conv2d, False, max_pool2d),  # planned per layer (cnnexp.functional.planner, CNNEXP_PLAN)
    "custom_builtin": (conv2d, False, max_pool2d),  # the same with the built-in choices (no planning)
    "custom_gemm": (conv2d_gemm_path, False, max_pool2d),
    "torch": (conv2d_torch, False, max_pool2d),
    "torch_cl": (conv2d_torch, True, max_pool2d),
    "naive": (conv2d_naive, False, max_pool2d),
}
# fully native references for the training step (F.max_pool2d instead of cnnexp's max_pool2d)
NATIVE_POOL = {
    "torch+F.pool": (conv2d_torch, False, lambda x: F.max_pool2d(x, 2)),
    "torch_cl+F.pool": (conv2d_torch, True, lambda x: F.max_pool2d(x, 2)),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def to_format(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if channels_last and t.dim() == 4 else t


def interleaved(fns: dict[str, callable], repeats: int, warmup: int, device: torch.device) -> dict[str, dict]:
    """Time each fn `repeats` times, round-robin; returns median seconds and the spread (IQR / median)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [med, med, med]
        out[name] = {"median_s": med, "iqr_rel": (q[2] - q[0]) / med, "min_s": min(ts), "n": len(ts)}
    return out


def layer_shapes(batch_shape: tuple[int, int, int, int]):
    """(name, x shape, weight shape) of the model's three conv layers (each input halved by the pool before)."""
    n, c, h, w = batch_shape
    for i, c_out in enumerate(CHANNELS):
        yield f"conv{i + 1} {c}->{c_out}", (n, c, h, w), (c_out, c, 3, 3)
        c, h, w = c_out, h // 2, w // 2


def layer_flops(x_shape, w_shape, mode: str, input_grad: bool) -> float:
    """Multiply-adds x 2 of a stride-1 'same' conv layer: the forward, and for "fwd+bwd" also the weight gradient
    and (when the input requires it) the input gradient, each as many as the forward."""
    n, _, h, w = x_shape
    c_out, c_in, kh, kw = w_shape
    forward = 2.0 * n * h * w * c_out * c_in * kh * kw
    return forward if mode == "fwd" else forward * (3 if input_grad else 2)


def bench_layers(shapes: dict, impls: list[str], repeats: int, device: torch.device) -> list[dict]:
    rows = []
    for shape_name, batch_shape in shapes.items():
        for li, (lname, xs, ws) in enumerate(layer_shapes(batch_shape)):
            names = [k for k in impls if k != "naive" or batch_shape[2] <= 32]
            data = {}
            for k in names:
                _, cl, _ = IMPLS[k]
                # in the network the custom conv's output (hence the next layer's input) is channels_last
                x_cl = cl or (k.startswith("custom") and li > 0)
                x = to_format(torch.randn(xs, device=device) * 50, x_cl).requires_grad_(li > 0)
                w = to_format(torch.randn(ws, device=device) * 0.1, cl).requires_grad_()
                data[k] = (x, w, torch.zeros(ws[0], device=device, requires_grad=True))
            for mode in ("fwd", "fwd+bwd"):

                def make(k, mode=mode):
                    fn, _, _ = IMPLS[k]
                    x, w, b = data[k]

                    def run():
                        with step_context(k):
                            if mode == "fwd":
                                return fn(x.detach(), w.detach(), b.detach(), padding="same")
                            return fn(x, w, b, padding="same").sum().backward()

                    return run

                # naive in a group of its own: its long loop of small ops would leave cold caches to whichever
                # implementation ran after it in the round-robin
                res = interleaved({k: make(k) for k in names if k != "naive"}, repeats, 1, device)
                if "naive" in names:
                    res |= interleaved({"naive": make("naive")}, max(2, repeats // 3), 1, device)
                flops = layer_flops(xs, ws, mode, input_grad=li > 0)
                for k, r in res.items():
                    rows.append({"section": "layer", "shape": shape_name, "layer": lname, "mode": mode, "impl": k,
                                 **r, "images_per_s": batch_shape[0] / r["median_s"],
                                 "gflop_per_s": flops / r["median_s"] / 1e9})
    return rows


def init_params(batch_shape, device, seed=0) -> list[torch.Tensor]:
    """Conv and Dense parameters of the seed model (uniform +-1/sqrt(fan_in), like torch's default init)."""
    gen = torch.Generator().manual_seed(seed)
    _, c, h, w = batch_shape
    shapes = []
    for c_out in CHANNELS:
        shapes += [(c_out, c, 3, 3), (c_out,)]
        c, h, w = c_out, h // 2, w // 2
    shapes += [(h * w * c, HIDDEN), (HIDDEN,), (HIDDEN, CLASSES), (CLASSES,)]
    params = []
    for s in shapes:
        fan_in = s[0] if len(s) == 2 else (s[1] * 9 if len(s) == 4 else s[0])
        params.append(((torch.rand(s, generator=gen) * 2 - 1) / fan_in**0.5).to(device))
    return params


def conv_relu_pool(x, weight, bias, conv, pool):
    """One conv 'same' + ReLU + 2x2 max pool of the model. cnnexp's own conv and pool run as KerasSequential runs
    them (`cnnexp.models.fusion`): ReLU after the pool, conv, pool and ReLU as one op where `fusable`."""
    if conv is conv2d and pool is max_pool2d:
        if fusable(x, weight, 2, 2, "valid"):
            return conv2d_max_pool(x, weight, bias, "same", 1, 2, relu=True)
        return F.relu(pool(conv(x, weight, bias, padding="same")))
    return pool(F.relu(conv(x, weight, bias, padding="same")))


def forward(params, x, conv, pool):
    """The lecture's Sequential model on plain tensors: (N, 3, H, W) in 0..255 -> logits (N, 5)."""
    x = x * (1.0 / 255)  # Rescaling
    for i in range(len(CHANNELS)):
        x = conv_relu_pool(x, params[2 * i], params[2 * i + 1], conv, pool)
    x = x.permute(0, 2, 3, 1).flatten(1)  # Keras Flatten: (N, H*W*C)
    k = 2 * len(CHANNELS)
    x = F.relu(torch.addmm(params[k + 1], x, params[k]))
    return torch.addmm(params[k + 3], x, params[k + 2])


def step_context(name: str):
    """What a step of implementation `name` runs under: `custom_builtin` takes the planner's built-in choices."""
    return planner.using(planner.built_in()) if name == "custom_builtin" else contextlib.nullcontext()


def make_step(name: str, batch_shape, device, table=None):
    conv, cl, pool = (table or IMPLS)[name]
    params = [to_format(p, cl).requires_grad_() for p in init_params(batch_shape, device)]
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(1)
    x = to_format((torch.rand(batch_shape, generator=gen) * 255).to(device), cl)
    y = torch.randint(0, CLASSES, (batch_shape[0],), generator=gen).to(device)

    def step():
        with step_context(name):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(forward(params, x, conv, pool), y)
            loss.backward()
            opt.step()
        return loss

    return step


def bench_train(shapes: dict, impls: list[str], repeats: int, device: torch.device) -> list[dict]:
    rows = []
    table = {**IMPLS, **NATIVE_POOL}
    for shape_name, batch_shape in shapes.items():
        names = [k for k in impls if k != "naive"] + list(NATIVE_POOL)
        steps = {k: make_step(k, batch_shape, device, table) for k in names}
        for k, r in interleaved(steps, repeats, 2, device).items():
            rows.append({"section": "train", "shape": shape_name, "mode": "train step", "impl": k, **r,
                         "images_per_s": batch_shape[0] / r["median_s"]})
    return rows


def proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def memory_worker(name: str, batch_shape, device: torch.device) -> None:
    """Run in a fresh process: peak memory of 2 training steps above the state after a first step
    (parameters, data, Adam moments). On CPU: the RSS high-water mark (VmHWM, reset through
    /proc/self/clear_refs) minus the RSS before; the parent sets MALLOC_MMAP_THRESHOLD_ so that freed
    big buffers leave RSS at once."""
    step = make_step(name, batch_shape, device, {**IMPLS, **NATIVE_POOL})
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(2):
            step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS
        base = proc_status_kib("VmRSS")
        for _ in range(2):
            step()
        peak = (proc_status_kib("VmHWM") - base) * 1024
    print(json.dumps({"peak_extra_bytes": peak}))


def bench_memory(shapes: dict, impls: list[str], device: torch.device) -> list[dict]:
    rows = []
    for shape_name, batch_shape in shapes.items():
        for k in [k for k in impls if k != "naive"] + list(NATIVE_POOL):
            cmd = [sys.executable, __file__, "--memory-worker", k, "--shape", json.dumps(batch_shape),
                   "--device", str(device), "--threads", str(torch.get_num_threads())]
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            peak = json.loads(res.stdout.strip().splitlines()[-1])["peak_extra_bytes"]
            rows.append({"section": "memory", "shape": shape_name, "mode": "train step", "impl": k,
                         "peak_extra_mib": peak / 2**20})
    return rows


def ratio_table(rows: list[dict]) -> str:
    """Group rows by (section, shape, layer, mode); custom/native images-per-second ratios."""
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        groups.setdefault((r["section"], r["shape"], r.get("layer", "whole model"), r["mode"]), {})[r["impl"]] = r
    lines = [f"{'shape':<12} {'what':<16} {'mode':<10} {'impl':<16} {'ms':>9} {'img/s':>9} {'GFLOP/s':>8} "
             f"{'noise':>6} {'custom/torch':>12} {'custom/torch_cl':>15}"]
    for (section, shape, what, mode), g in groups.items():
        if section == "memory":
            continue
        for k, r in g.items():
            ratio = lambda ref: (f"{r['images_per_s'] / g[ref]['images_per_s']:.2f}"
                                 if ref in g and k.startswith("custom") else "")
            gflops = f"{r['gflop_per_s']:8.1f}" if "gflop_per_s" in r else f"{'':8}"
            lines.append(f"{shape:<12} {what:<16} {mode:<10} {k:<16} {r['median_s'] * 1e3:9.1f} "
                         f"{r['images_per_s']:9.0f} {gflops} {r['iqr_rel'] * 100:5.0f}% {ratio('torch'):>12} "
                         f"{ratio('torch_cl'):>15}")
    mem = [r for r in rows if r["section"] == "memory"]
    if mem:
        lines.append("\npeak extra memory of a training step (MiB):")
        for shape in dict.fromkeys(r["shape"] for r in mem):
            g = {r["impl"]: r["peak_extra_mib"] for r in mem if r["shape"] == shape}
            rel = f"  custom/torch = {g['custom'] / g['torch']:.2f}" if "custom" in g and "torch" in g else ""
            lines.append(f"  {shape:<12} " + "  ".join(f"{k} {v:.0f}" for k, v in g.items()) + rel)
    return "\n".join(lines)


def custom_conv_path(device: torch.device) -> str:
    """Which path `custom` took: the numbers mean something else when the kernel could not be built."""
    probe = torch.ones(1, 1, 3, 3, device=device)
    if kernels.usable(probe, probe):
        return f"compiled direct kernel ({kernels.vec_width()}-float vectors)"
    return "im2col + GEMM (compiled kernel not used on this device or not built)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small shapes, few repeats (smoke run)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's default, one per core)")
    p.add_argument("--out", default="bench-results/bench_conv.json")
    p.add_argument("--sections", default="layer,train,memory", help="comma list of layer, train, memory")
    add_memory_flag(p)
    p.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--shape", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker:  # glibc's defaults: the peak above the first step is then the step's own memory
        memory_worker(args.memory_worker, tuple(json.loads(args.shape)), device)
        return
    retained = apply_memory_flag(args)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeats = args.repeats or (3 if args.quick else 9)
    impls = list(IMPLS)
    sections = args.sections.split(",")
    rows = []
    if "layer" in sections:
        rows += bench_layers(shapes, impls, repeats, device)
    if "train" in sections:
        rows += bench_train(shapes, impls, repeats, device)
    if "memory" in sections:
        rows += bench_memory(shapes, impls, device)
    custom_path = custom_conv_path(device)
    cpu = cpu_model()
    print(f"CPU {cpu}, device {device}, threads {torch.get_num_threads()}, OpenMP env {OMP_ENV}, "
          f"{memory_note(retained)}, load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"custom = {custom_path}, planned per layer (CNNEXP_PLAN={planner.current().mode}); custom_builtin = the "
          f"built-in choices; custom_gemm = the im2col + GEMM path, forced")
    print(ratio_table(rows))
    meta = {"device": str(device), "cpu": cpu, "threads": torch.get_num_threads(), "retain_freed_memory": retained,
            "openmp_env": OMP_ENV, "torch": torch.__version__,
            "python": platform.python_version(), "repeats": repeats, "quick": args.quick, "argv": sys.argv[1:],
            "load_avg_before": load_before, "load_avg_after": os.getloadavg(), "custom_path": custom_path}
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
    write_results(args.out, meta, rows)


if __name__ == "__main__":
    main()
