"""Lightning's NVML-based GPU count, dropped where NVML's library is missing: the same answers without its cost.

Importing lightning sets `PYTORCH_NVML_BASED_CUDA_CHECK=1`, so that `torch.cuda.is_available()` counts GPUs through
NVML and does not initialize CUDA before DataLoader workers fork. With a CUDA build of torch on a machine without
an NVIDIA driver, NVML's library is missing, and each count tries to load it again, fails, and falls back to
CUDA's own count (`torch.cuda.device_count`). `torch.optim` counts on every `step()` (its CUDA-graph capture
check), so every training step paid a failed library load (docs/benchmarks.md has the time). Where the library
cannot be loaded the variable only adds that cost, so `drop_failing_nvml_probe` removes it there; where it loads
(a machine with a driver), nothing changes.
"""

from __future__ import annotations

import ctypes
import os

NVML_CHECK_ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"
NVML_LIBRARY = "libnvidia-ml.so.1"  # the name torch.cuda loads


def nvml_loadable() -> bool:
    """Can NVML's library be loaded (an NVIDIA driver is installed)?"""
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return False
    return True


def drop_failing_nvml_probe() -> bool:
    """Unset `PYTORCH_NVML_BASED_CUDA_CHECK` when it is set and NVML's library cannot be loaded; True if it was."""
    if os.environ.get(NVML_CHECK_ENV) != "1" or nvml_loadable():
        return False
    del os.environ[NVML_CHECK_ENV]
    return True
