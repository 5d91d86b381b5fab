"""Compiled direct-convolution kernels for the flattened grid of `grid_gemm` (CPU, float32).

`native/grid_conv.cpp` computes a stride-1 convolution straight from the padded channels-last grid, with
an R x V register tile of output vectors per step, so neither the forward, nor the input gradient, nor
the weight gradient builds an im2col matrix (see that file). It is plain C++ with no PyTorch headers:
the first use compiles it (about half a second with g++) into a cache folder and loads it with ctypes;
the tensors' memory is handed over by pointer. Everything stays an ordinary tensor operation for autograd,
which only ever sees the `Conv2dFunction` around it.

When the kernel is not usable (not CPU float32, TorchScript tracing, no C++ compiler, a failed build or
`CNNEXP_DIRECT_CONV=0`) `grid_gemm` falls back to its blocked im2col + GEMM path, which computes the
same thing with torch ops; a failed build says why once, as a warning.

Environment:
    CNNEXP_DIRECT_CONV: `0` turns the compiled kernel off.
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

GridShape = tuple[int, int, int, int, int]  # (N, Hs, Ws, H_out, W_out): see native/grid_conv.cpp

SOURCE = Path(__file__).with_name("native") / "grid_conv.cpp"
SWITCH = "CNNEXP_DIRECT_CONV"
FLAGS_ENV = "CNNEXP_KERNEL_FLAGS"
FLAG_SETS = (  # tried in order: the first that compiles is used (CNNEXP_KERNEL_FLAGS replaces them all)
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-march=native"],
    ["-O3"],
)


_local = threading.local()  # `disabled()` state, per thread


class KernelBuildError(RuntimeError):
    """The C++ kernel could not be compiled or loaded."""


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
        if name and shutil.which(name):
            return shutil.which(name)
    raise KernelBuildError("no C++ compiler found (install g++, or set CXX)")


def _cache_dir() -> Path:
    default = Path.home() / ".cache" / "cnnexp" / "kernels"
    return Path(os.environ.get("CNNEXP_KERNEL_CACHE", default)).expanduser()


def build(source: Path = SOURCE) -> Path:
    """Compile `source` into a shared library in the cache folder (once per source, compiler and CPU).

    Returns:
        the library's path. Concurrent builders (parallel sweep jobs, DDP ranks) each write a private
        temporary file and rename it into place, so a half-written library is never loaded.

    Raises:
        KernelBuildError: no compiler, or every flag set failed (the compiler's message is included).
    """
    cxx = _compiler()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    text = source.read_bytes()
    errors = []
    flag_sets = [os.environ[FLAGS_ENV].split()] if os.environ.get(FLAGS_ENV) else FLAG_SETS
    for flags in flag_sets:
        key = hashlib.sha256(b"\0".join(s.encode() for s in (cxx, version, _cpu_signature(), *flags)) + text)
        target = _cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}.so"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        cmd = [cxx, *flags, "-std=c++17", "-shared", "-fPIC", str(source), "-o", str(tmp)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0:
            os.replace(tmp, target)
            return target
        tmp.unlink(missing_ok=True)
        errors.append(f"{' '.join(cmd)}: {done.stderr.strip()[-500:]}")
    raise KernelBuildError("compiling the direct-conv kernel failed:\n" + "\n".join(errors))


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.cnnexp_vec_width.restype = i32
    lib.cnnexp_grid_conv.argtypes = [ptr, i64, ptr, i64, i64, ptr, i32, ptr, ptr, i64, i64, i64, i64, i64, i32]
    lib.cnnexp_grid_conv.restype = None
    lib.cnnexp_grid_conv_weight_grad.argtypes = [ptr, i64, ptr, i64, ptr, i32, ptr, i64, i64, i64, i64, i64, i32]
    lib.cnnexp_grid_conv_weight_grad.restype = None
    return lib


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernel library, or None when it is switched off or cannot be built (warns once)."""
    if os.environ.get(SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
        return None
    try:
        return _bind(ctypes.CDLL(str(build())))
    except (KernelBuildError, OSError, AttributeError) as err:
        warnings.warn(
            f"cnnexp: the compiled direct conv is unavailable ({err}); using the slower im2col + GEMM path. "
            f"Fix: install g++ (or set CXX) if no compiler was found, point CNNEXP_KERNEL_CACHE at a writable "
            f"folder if the cache cannot be written, or set {SWITCH}=0 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


@contextlib.contextmanager
def disabled():
    """Within this block (this thread), convolutions started here take the im2col + GEMM path; a conv's
    backward follows the path its forward took. For side-by-side benchmarks and tests."""
    before = getattr(_local, "off", False)
    _local.off = True
    try:
        yield
    finally:
        _local.off = before


def usable(*tensors: torch.Tensor) -> bool:
    """True when the kernel can run on these tensors: CPU, float32, not under TorchScript tracing, not
    `disabled()`."""
    return (
        all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and not torch.jit.is_tracing()
        and not getattr(_local, "off", False)
        and library() is not None
    )


def vec_width() -> int:
    """Floats per SIMD vector of the build (16 with AVX-512, else 8): channel counts are padded to it."""
    return library().cnnexp_vec_width()


def padded_channels(c: int) -> int:
    """`c` rounded up to the vector width."""
    v = vec_width()
    return -(-c // v) * v


def tap_weights(weight: torch.Tensor, c_in_rows: int | None = None) -> torch.Tensor:
    """The kernel's weight layout: `(C_out, C_in, kH, kW)` -> `(kH*kW, C_in', C_out')`, zero-padded.

    `C_out'` is C_out rounded up to the vector width; `C_in' = c_in_rows or C_in` (>= C_in: extra input
    channels that the grid carries, e.g. the padding columns of a gradient buffer, get zero weights).
    """
    c_out, c_in, kh, kw = weight.shape
    out = weight.new_zeros((kh * kw, c_in_rows or c_in, padded_channels(c_out)))
    out[:, :c_in, :c_out] = weight.permute(2, 3, 1, 0).reshape(kh * kw, c_in, c_out)
    return out


def _offsets(offsets: list[int]) -> torch.Tensor:
    return torch.tensor(offsets, dtype=torch.int64)


def conv(buf: torch.Tensor, grid: GridShape, offsets: list[int], w_taps: torch.Tensor, c_out: int,
         bias: torch.Tensor | None = None) -> torch.Tensor:
    """`out[n, y, x] = sum_t buf[p + offsets[t]] @ w_taps[t] + bias`, p = (n*Hs + y)*Ws + x the pixel's grid row.

    Shape:
        buf: `(>= N*Hs*Ws + max(offsets), C)` contiguous; grid: `(N, Hs, Ws, H_out, W_out)`;
        w_taps: `(T, C, C_out')` from `tap_weights`; bias: `(C_out,)` or None -> `(N, H_out, W_out, C_out)`.
    """
    n, hs, ws, ho, wo = grid
    assert buf.is_contiguous() and w_taps.shape[1] == buf.shape[1] and buf.shape[0] >= n * hs * ws + max(offsets)
    out = buf.new_empty((n, ho, wo, c_out))
    offs, w_taps = _offsets(offsets), w_taps.contiguous()
    bias = None if bias is None else bias.contiguous()
    library().cnnexp_grid_conv(
        buf.data_ptr(), buf.shape[1], w_taps.data_ptr(), c_out, w_taps.shape[2], offs.data_ptr(), len(offsets),
        None if bias is None else bias.data_ptr(), out.data_ptr(), n, hs, ws, ho, wo, torch.get_num_threads(),
    )
    return out


def weight_grad(buf: torch.Tensor, grad: torch.Tensor, grid: GridShape, offsets: list[int]) -> torch.Tensor:
    """`dw[t] = sum over pixels of buf[p + offsets[t]]^T grad[n, y, x]`, the weight gradient.

    Shape:
        buf: `(>= N*Hs*Ws + max(offsets), C)` contiguous; grad: `(N, H_out, W_out, C_out')` contiguous, C_out'
        a multiple of the vector width; grid: `(N, Hs, Ws, H_out, W_out)` -> `(T, C, C_out')`.
    """
    n, hs, ws, ho, wo = grid
    c_out_p = grad.shape[-1]
    assert buf.is_contiguous() and grad.is_contiguous() and c_out_p % vec_width() == 0
    assert grad.shape == (n, ho, wo, c_out_p) and buf.shape[0] >= n * hs * ws + max(offsets)
    dw = buf.new_zeros((len(offsets), buf.shape[1], c_out_p))
    offs = _offsets(offsets)
    library().cnnexp_grid_conv_weight_grad(
        buf.data_ptr(), buf.shape[1], grad.data_ptr(), c_out_p, offs.data_ptr(), len(offsets), dw.data_ptr(),
        n, hs, ws, ho, wo, torch.get_num_threads(),
    )
    return dw
