"""scripts/bench_train.py times the real training path (the package's configs, Trainer.fit) end to end."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_train.py"


@pytest.mark.slow
def test_bench_train_smoke_writes_rates_for_every_mode(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    try:
        bench.main(["--quick", "--threads", "1", "--impls", "custom,torch", "--modes", "bare,loader,lightning",
                    "--epochs", "2", "--batches", "2", "--no-keras", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads(out.read_text())
    rates = {(r["impl"], r["mode"]): r["images_per_s"] for r in saved["rows"]}
    assert set(rates) == {(i, m) for i in ("custom", "torch") for m in ("bare", "loader", "lightning")}
    assert all(rate > 0 for rate in rates.values())
    shares = [r["step_share"] for r in saved["rows"]]  # the step's work timed inside each run, against its wall time
    assert len(shares) == 6 and all(0 < share < 1 for share in shares)
    assert saved["meta"]["cpu"] and saved["meta"]["threads"] == 1
    printed = capsys.readouterr().out
    assert "custom/torch" in printed and "in-run L" in printed and "data" in printed
    assert "skipped" in printed  # --no-keras says Keras was not run
