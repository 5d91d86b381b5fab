"""Importing the layers and models stays light: no lightning, torchvision, matplotlib, keras, h5py or hydra."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("lightning", "torchvision", "matplotlib", "tensorboard", "keras", "h5py", "hydra")


def test_layers_and_models_import_without_heavy_packages():
    code = ("import sys, cnnexp.layers, cnnexp.models; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at import time: {out}"
