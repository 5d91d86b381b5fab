"""scripts/bench_depthwise.py runs end to end on its quick shapes and writes a ratio per row."""

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_depthwise.py"


def test_bench_depthwise_quick_run_writes_every_row(tmp_path, monkeypatch):
    monkeypatch.setenv("GOMP_SPINCOUNT", "10000")  # else bench_conv sets it in os.environ for good
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    threads = torch.get_num_threads()
    spec = importlib.util.spec_from_file_location("bench_depthwise", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    try:
        bench.main(["--quick", "--repeats", "1", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    rows = json.loads(out.read_text())["rows"]
    assert {(r["layer"], r["channels_last"], r["mode"]) for r in rows} == {
        (name, cl, mode) for name in bench.QUICK_LAYERS for cl in (False, True) for mode in ("fwd", "fwd+bwd")}
    assert all(r["ratio_torch_over_custom"] > 0 for r in rows)
