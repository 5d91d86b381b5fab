"""Build and load cnnexp's compiled CPU kernels (`native/*.cpp`), and say when they can run.

The kernels are plain C++ with no PyTorch headers (`native/grid_conv.cpp`: the direct convolution;
`native/max_pool.cpp`: max pooling): the first use compiles them (about a second with g++) into one
library in a cache folder and loads it with ctypes; tensors' memory is handed over by pointer
(`direct_conv`, `pool_kernels`). Autograd only ever sees the Functions around them, whose backward
formulas are written by hand.

When the kernels are not usable (not CPU float32, TorchScript tracing, no C++ compiler, a failed build or
`CNNEXP_NATIVE_KERNELS=0`) the callers fall back to their pure-PyTorch paths, which compute the same thing;
a failed build says why once, as a warning.

The kernels run inside the custom ops' CPU implementations (`conv2d`, `max_pool2d`), which torch.compile and
torch.export treat as opaque: the library is looked up (and built) on the first eager call, never traced.

Environment:
    CNNEXP_NATIVE_KERNELS: `0` turns the compiled kernels (conv and pool) off; `CNNEXP_DIRECT_CONV`, its
        old name, is still read when the new one is not set.
    CNNEXP_KERNEL_CACHE: where the built library goes (default `~/.cache/cnnexp/kernels`).
    CNNEXP_KERNEL_FLAGS: compiler flags instead of the defaults (e.g. `-O3 -mavx2 -mfma -fopenmp`).
    CXX: the C++ compiler (default `c++`, then `g++`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import threading
import warnings
from pathlib import Path

import torch

from cnnexp.atomic_write import atomic_output

NATIVE = Path(__file__).with_name("native")
SOURCES = tuple(sorted(NATIVE.glob("*.cpp")))
HEADERS = tuple(sorted(NATIVE.glob("*.h")))  # part of the cache key, not compiled on their own
SWITCH = "CNNEXP_NATIVE_KERNELS"
SWITCH_ALIASES = ("CNNEXP_DIRECT_CONV",)  # old names of SWITCH, read when it is not set
FLAGS_ENV = "CNNEXP_KERNEL_FLAGS"
FLAG_SETS = (  # tried in order: the first that compiles is used (CNNEXP_KERNEL_FLAGS replaces them all)
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-march=native"],
    ["-O3"],
)


_local = threading.local()  # `disabled()` state, per thread


class KernelBuildError(RuntimeError):
    """The C++ kernel could not be compiled or loaded."""


class _CompileFailed(Exception):
    """One flag set did not compile (the next one is tried)."""


def _cpu_signature() -> str:
    """The CPU's feature flags (Linux), so that a cache shared between machines never mixes builds."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    import platform

    return platform.machine() + platform.processor()


def _compiler() -> str:
    for name in (os.environ.get("CXX"), "c++", "g++"):
        path = shutil.which(name) if name else None
        if path:
            return path
    raise KernelBuildError("no C++ compiler found (install g++, or set CXX)")


def _cache_dir() -> Path:
    default = Path.home() / ".cache" / "cnnexp" / "kernels"
    return Path(os.environ.get("CNNEXP_KERNEL_CACHE", default)).expanduser()


def build(sources: tuple[Path, ...] = SOURCES, name: str = "cnnexp_kernels") -> Path:
    """Compile `sources` into one shared library in the cache folder (once per sources, compiler and CPU).

    Returns:
        the library's path. Concurrent builders (parallel sweep jobs, DDP ranks) each write a private
        temporary file and rename it into place, so a half-written library is never loaded.

    Raises:
        KernelBuildError: no compiler, or every flag set failed (the compiler's message is included).
    """
    cxx = _compiler()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    text = b"\0".join(s.read_bytes() for s in (*sources, *HEADERS))
    errors = []
    flag_sets = [os.environ[FLAGS_ENV].split()] if os.environ.get(FLAGS_ENV) else FLAG_SETS
    for flags in flag_sets:
        key = hashlib.sha256(b"\0".join(s.encode() for s in (cxx, version, _cpu_signature(), *flags)) + text)
        target = _cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"
        if target.exists():
            return target
        try:
            with atomic_output(target) as tmp:
                cmd = [cxx, *flags, "-std=c++17", "-shared", "-fPIC", *map(str, sources), "-o", str(tmp)]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise _CompileFailed(f"{' '.join(cmd)}: {done.stderr.strip()[-500:]}")
            return target
        except _CompileFailed as failed:
            errors.append(str(failed))
    raise KernelBuildError("compiling cnnexp's C++ kernels failed:\n" + "\n".join(errors))


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.cnnexp_vec_width.restype = i32
    lib.cnnexp_tile_count.argtypes = [i32]
    lib.cnnexp_tile_count.restype = i32
    lib.cnnexp_tile_shape.argtypes = [i32, i32, ptr]
    lib.cnnexp_tile_shape.restype = None
    lib.cnnexp_grid_conv.argtypes = [ptr, i64, ptr, i64, i64, ptr, i32, ptr, ptr, i64, i64, i64, i64, i64, i32, i32]
    lib.cnnexp_grid_conv.restype = i32
    lib.cnnexp_grid_conv_weight_grad.argtypes = [ptr, i64, ptr, i64, ptr, i32, ptr, i64, i64, i64, i64, i64, i32,
                                                 i32]
    lib.cnnexp_grid_conv_weight_grad.restype = i32
    lib.cnnexp_max_pool.argtypes = [ptr, ptr] + [i64] * 12 + [i32]
    lib.cnnexp_max_pool.restype = None
    lib.cnnexp_max_pool_backward.argtypes = [ptr, ptr, ptr, ptr] + [i64] * 12 + [i32]
    lib.cnnexp_max_pool_backward.restype = None
    return lib


def switched_off() -> bool:
    """True when `CNNEXP_NATIVE_KERNELS` (or its old name `CNNEXP_DIRECT_CONV`) is 0 / false / no / off."""
    for name in (SWITCH, *SWITCH_ALIASES):
        if name in os.environ:
            return os.environ[name].strip().lower() in {"0", "false", "no", "off"}
    return False


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernel library, or None when it is switched off or cannot be built (warns once)."""
    if switched_off():
        return None
    try:
        return _bind(ctypes.CDLL(str(build())))
    except (KernelBuildError, OSError, AttributeError) as err:
        warnings.warn(
            f"cnnexp: the compiled CPU kernels are unavailable ({err}); using the slower PyTorch paths "
            f"(im2col + GEMM convolution, tap-by-tap pooling). "
            f"Fix: install g++ (or set CXX) if no compiler was found, point CNNEXP_KERNEL_CACHE at a writable "
            f"folder if the cache cannot be written, or set {SWITCH}=0 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


@contextlib.contextmanager
def disabled():
    """Within this block (this thread), convolutions and poolings started here take their PyTorch paths; a
    backward follows the path its forward took. For side-by-side benchmarks and tests."""
    before = getattr(_local, "off", False)
    _local.off = True
    try:
        yield
    finally:
        _local.off = before


def usable(*tensors: torch.Tensor) -> bool:
    """True when the kernels can run on these tensors: CPU, float32, not under TorchScript tracing, not
    `disabled()`."""
    return (
        all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and not torch.jit.is_tracing()
        and not getattr(_local, "off", False)
        and library() is not None
    )


def build_id() -> str:
    """The loaded library's name (it carries the hash of sources, compiler, flags and CPU), or "none": plans
    timed with one build are not reused with another."""
    lib = library()
    return Path(lib._name).name if lib is not None else "none"


def vec_width() -> int:
    """Floats per SIMD vector of the build (16 with AVX-512, else 8): channel counts are padded to it."""
    return library().cnnexp_vec_width()


def padded_channels(c: int) -> int:
    """`c` rounded up to the vector width."""
    v = vec_width()
    return -(-c // v) * v
