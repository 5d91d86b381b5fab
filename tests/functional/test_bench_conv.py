"""scripts/bench_conv.py runs end to end on its quick shapes and says which CPU and which path `custom` took."""

import importlib.util
import json
from pathlib import Path

import torch

from .kernels_built import require_kernels

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_conv.py"


def load_bench(monkeypatch):
    """scripts/bench_conv.py as a module (GOMP_SPINCOUNT set first, else the script sets it in os.environ for good)."""
    monkeypatch.setenv("GOMP_SPINCOUNT", "10000")
    spec = importlib.util.spec_from_file_location("bench_conv", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_conv_training_step_smoke(tmp_path, capsys, monkeypatch):
    require_kernels()
    threads = torch.get_num_threads()
    bench = load_bench(monkeypatch)
    out = tmp_path / "bench.json"
    try:
        bench.main(["--quick", "--sections", "train", "--repeats", "1", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads(out.read_text())
    assert saved["meta"]["custom_path"].startswith("compiled direct kernel")
    impls = {(r["shape"], r["impl"]) for r in saved["rows"]}
    for shape in bench.QUICK_SHAPES:
        assert {(shape, k) for k in ("custom", "custom_builtin", "custom_gemm", "torch", "torch_cl")} <= impls
    assert all(r["median_s"] > 0 for r in saved["rows"])
    printed = capsys.readouterr().out
    assert "custom = compiled direct kernel" in printed and "custom/torch_cl" in printed
    assert f"CPU {saved['meta']['cpu']}," in printed


def test_layer_flops_count_the_directions_run(monkeypatch):
    bench = load_bench(monkeypatch)
    forward = 2 * 2 * 4 * 5 * 6 * 3 * 9  # N=2, 4x5 outputs, 6 filters of 3 channels x 3x3, a multiply and an add
    assert bench.layer_flops((2, 3, 4, 5), (6, 3, 3, 3), "fwd", input_grad=True) == forward
    assert bench.layer_flops((2, 3, 4, 5), (6, 3, 3, 3), "fwd+bwd", input_grad=False) == 2 * forward
    assert bench.layer_flops((2, 3, 4, 5), (6, 3, 3, 3), "fwd+bwd", input_grad=True) == 3 * forward


def test_bench_scaling_smoke_gives_a_ratio_per_size_and_batch(tmp_path, capsys):
    require_kernels()
    script = SCRIPT.parent / "bench_scaling.py"
    spec = importlib.util.spec_from_file_location("bench_scaling", script)
    scaling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scaling)
    threads = torch.get_num_threads()
    out = tmp_path / "scaling.json"
    try:
        scaling.main(["--sizes", "16,24", "--batches", "2", "--repeats", "1", "--threads", "1", "--no-memory",
                      "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["side"], r["batch"]) for r in rows] == [(16, 2), (24, 2)]
    assert all(r[f"{k}_ms"] > 0 for r in rows for k in ("custom", "torch", "torch_cl"))
    assert "custom/torch_cl" in capsys.readouterr().out
