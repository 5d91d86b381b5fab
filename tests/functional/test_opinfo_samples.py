"""Every CPU float64 OpInfo sample of conv2d, max_pool2d, avg_pool2d and batch_norm (PyTorch's own test inputs)
gives torch's outputs and gradients through cnnexp.functional (see opinfo_harness.py, run in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("opinfo_harness.py")
ROOT = Path(__file__).resolve().parents[2]
OPS = ["nn.functional.conv2d", "nn.functional.max_pool2d", "nn.functional.avg_pool2d", "nn.functional.batch_norm"]
# max_pool2d has 1,440 samples (every kernel/stride/padding/dilation/ceil_mode/return_indices combination); the
# suite runs every 10th, `python tests/functional/opinfo_harness.py` runs them all (docs/functional.md).
STEP = "nn.functional.max_pool2d=10"


@pytest.fixture(scope="module")
def counts() -> dict:
    pytest.importorskip("expecttest")  # torch.testing._internal needs it (in the dev extra)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(HARNESS), "--step", STEP, "--control"], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", OPS)
def test_every_opinfo_sample_gives_torchs_outputs_and_gradients(counts, name):
    c = counts[name]
    print(f"\n{name}: {c['matched']}/{c['total']} OpInfo samples match")
    assert c["total"] > 0
    assert c["failures"] == [] and c["matched"] == c["total"]


@pytest.mark.slow
def test_the_comparison_catches_a_wrong_op(counts):
    c = counts["control"]
    assert c["total"] > 0 and c["matched"] == 0
