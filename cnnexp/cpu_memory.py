"""Keep freed CPU memory in the process, so that each training step reuses the last step's pages.

PyTorch's CPU tensors come from `malloc`. glibc serves a block above its mmap threshold (at most 32 MiB) with a
fresh `mmap` and unmaps it on `free`, and it trims the top of its heap back to the system: every training step
maps its large activations and gradients afresh, and the first touch of each 4 KiB page is a page fault. For
the lecture model at 180x180 that is a large share of a step (docs/benchmarks.md). TensorFlow's BFC allocator
and PyTorch's own CUDA caching allocator keep freed blocks for reuse; `retain_freed_memory()` asks glibc for the
same: every block from the heap (no mmap), and no trimming. The process then keeps its high-water mark, as a
caching allocator does, and the next step finds its pages already mapped.

`python -m cnnexp` and `python -m cnnexp.plan` call it through `apply_cpu_settings(cfg)` when the config says
`retain_cpu_memory: true` (the default); `false` keeps glibc's defaults. Elsewhere (macOS, musl, Windows) it does
nothing and says so by returning False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
from typing import Any

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # mallopt takes a C int: trim only when 2 GiB lie free at the heap's top


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def retain_freed_memory() -> bool:
    """Serve every block from glibc's heap and never trim it. True when applied; False where glibc is absent.

    Idempotent; it changes how later allocations are served, never memory that is already allocated.
    """
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))


def apply_cpu_settings(cfg: Any) -> None:
    """The run config's CPU settings for this process: `torch_threads` (null: torch's default) and
    `retain_cpu_memory` (default true), so that planning and training run under the same ones."""
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    if cfg.get("retain_cpu_memory", True):
        retain_freed_memory()
