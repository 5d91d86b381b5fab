"""scripts/bench_data.py runs end to end on a few small JPEGs and writes its JSON."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_data.py"


def test_bench_data_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_data", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    result = bench.main(["--images", "30", "--classes", "3", "--epochs", "2", "--batch-size", "8",
                         "--source-size", "48", "64", "--image-size", "24", "24", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["speedup"] == result["speedup"] > 0
    assert [r["images"] for r in saved["uncached"]] == [30, 30]
    assert [r["images"] for r in saved["cached"]] == [24, 24]  # the training split: 30 - int(0.2 * 30)
    assert saved["machine"]["cores"] >= 1
    assert "speedup of an epoch" in capsys.readouterr().out
