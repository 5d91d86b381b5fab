"""cnnexp's compiled CPU kernels (`native/*.cpp`): build, load and switch them, and the ctypes binding of each.

The kernels are plain C++ with no PyTorch headers (`native/grid_conv.cpp`: the direct convolution;
`native/grid_layout.cpp`: the padded grids and weight layout it reads, `to_grid` and `tap_weights`;
`native/max_pool.cpp`: max pooling): the first use compiles them (about a second with g++) into one
library in a cache folder and loads it with ctypes (`library`); tensors' memory is handed over by pointer.
Autograd only ever sees the Functions around them, whose backward formulas are written by hand.

When the kernels are not usable (not CPU float32, TorchScript tracing, no C++ compiler, a failed build or
`CNNEXP_NATIVE_KERNELS=0`) the callers fall back to their pure-PyTorch paths, which compute the same thing;
a failed build says why once, as a warning.

The kernels run inside the custom ops' CPU implementations (`conv2d`, `max_pool2d`), which torch.compile and
torch.export treat as opaque: the library is looked up (and built) on the first eager call, never traced.

The direct convolution (`direct_conv`, `direct_weight_grad`, for the flattened grid of `grid_gemm`; called by
`grid_direct`) computes a stride-1 convolution straight from the padded channels-last grid, with an R x V
register tile of output vectors per step, so neither the forward, nor the input gradient, nor the weight
gradient builds an im2col matrix. Outputs are dense `(N, H_out, W_out, C)` tensors; `tap_weights` is its
weight layout and `direct_tiles` its register-tile variants.

Max pooling (`max_pool_forward`, `max_pool_backward`, when `max_pool_usable`): forward and backward on dense
channels-last tensors, with the rules of `max_pool2d`: -inf padding, NaN wins, the gradient goes to the first
arg-max in row-major window order. For pools whose windows tile their input (`conv_pool.py`): `direct_conv_pool`
(the direct convolution pooled in its epilogue), `max_pool_argmax` (the pool alone) and `max_pool_scatter` (the
gradient), with one arg-max byte per pooled value (`native/pool_argmax.h`).

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

from .geometry import WindowGeometry, tiled_pool_hw
from .im2col import empty_channels_last, nhwc_view

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
    lib.cnnexp_grid_conv_pool.argtypes = [ptr, i64, ptr, i64, i64, ptr, i32, ptr, ptr, ptr, i64, i64, i64, i64, i64,
                                          i32, i32, i32, i32, i32]
    lib.cnnexp_grid_conv_pool.restype = i32
    lib.cnnexp_grid_conv_weight_grad.argtypes = [ptr, i64, ptr, i64, ptr, i32, ptr, i64, i64, i64, i64, i64, i32,
                                                 i32]
    lib.cnnexp_grid_conv_weight_grad.restype = i32
    lib.cnnexp_grid_conv_weight_grad_pooled.argtypes = [ptr, i64, ptr, ptr, i64, ptr, i32, ptr] + [i64] * 5 + [i32] * 4
    lib.cnnexp_grid_conv_weight_grad_pooled.restype = i32
    lib.cnnexp_to_grid.argtypes = [ptr] + [i64] * 8 + [ptr] + [i64] * 5 + [i32]
    lib.cnnexp_to_grid.restype = None
    lib.cnnexp_pooled_to_grid.argtypes = [ptr, ptr] + [i64] * 4 + [i32] * 2 + [ptr] + [i64] * 4 + [i32]
    lib.cnnexp_pooled_to_grid.restype = None
    lib.cnnexp_tap_weights.argtypes = [ptr, i64, i64, i64, i64, i32, ptr, i64, i64]
    lib.cnnexp_tap_weights.restype = None
    lib.cnnexp_max_pool.argtypes = [ptr, ptr] + [i64] * 12 + [i32]
    lib.cnnexp_max_pool.restype = None
    lib.cnnexp_max_pool_backward.argtypes = [ptr, ptr, ptr, ptr] + [i64] * 12 + [i32]
    lib.cnnexp_max_pool_backward.restype = None
    lib.cnnexp_max_pool_argmax.argtypes = [ptr, ptr, ptr] + [i64] * 4 + [i32] * 4
    lib.cnnexp_max_pool_argmax.restype = None
    lib.cnnexp_max_pool_scatter.argtypes = [ptr, ptr, ptr] + [i64] * 4 + [i32] * 3
    lib.cnnexp_max_pool_scatter.restype = None
    lib.cnnexp_pooled_bias_grad.argtypes = [ptr, ptr, i64, i64, ptr, i32]
    lib.cnnexp_pooled_bias_grad.restype = None
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


def usable(*tensors: torch.Tensor | None) -> bool:
    """True when the kernels can run on these tensors (None, e.g. a missing bias, is skipped): CPU, float32, not
    under TorchScript tracing, not `disabled()`."""
    for t in tensors:
        if t is not None and not (t.is_cpu and t.dtype == torch.float32):
            return False
    return not torch.jit.is_tracing() and not getattr(_local, "off", False) and library() is not None


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


# --- the direct convolution (native/grid_conv.cpp) -------------------------------------------------------------

GridShape = tuple[int, int, int, int, int]  # (N, Hs, Ws, H_out, W_out): see native/grid_conv.cpp


def tap_weights(weight: torch.Tensor, rows: int | None = None, flip: bool = False) -> torch.Tensor:
    """The kernel's weight layout, zero-padded, in one pass (`native/grid_layout.cpp`).

    Forward: `(C_out, C_in, kH, kW)` -> `(kH*kW, rows, C_out')`, `out[i*kW + j, c, o] = weight[o, c, i, j]`.
    `flip` (the input gradient's kernel, flipped and transposed): -> `(kH*kW, rows, C_in')`,
    `out[i*kW + j, o, c] = weight[o, c, kH-1-i, kW-1-j]`. The last dimension is rounded up to the vector width;
    `rows` (default C_in, or C_out with `flip`) may be larger: extra input channels that the grid carries, e.g.
    the padding columns of a gradient buffer, get zero weights.
    """
    c_out, c_in, kh, kw = weight.shape
    rows = rows or (c_out if flip else c_in)
    assert rows >= (c_out if flip else c_in), "tap_weights: fewer rows than the weight's channels"  # no overflow
    cols = padded_channels(c_in if flip else c_out)
    w = weight.contiguous()
    out = w.new_empty((kh * kw, rows, cols))
    library().cnnexp_tap_weights(w.data_ptr(), c_out, c_in, kh, kw, int(flip), out.data_ptr(), rows, cols)
    return out


def to_grid(x: torch.Tensor, first: int, rows: int, hs: int, ws: int, channels: int = 0) -> torch.Tensor:
    """x on the flattened grid of `grid_gemm.grid_dims`, in one pass (`native/grid_layout.cpp`): zero everywhere
    except pixel `(n, y, x)` at row `first + (n*hs + y)*ws + x`; `channels` (>= C) pads every row with zeros.

    Shape:
        x: `(N, C, H, W)`, any strides (NCHW, channels_last, expanded) -> `(rows, max(C, channels))`.
    """
    n, c, h, w = x.shape
    assert hs >= h and ws >= w and rows >= first + n * hs * ws, "to_grid: the grid does not hold x"  # no overflow
    cb = max(c, channels)
    buf = x.new_empty((rows, cb))
    library().cnnexp_to_grid(x.data_ptr(), n, c, h, w, *x.stride(), buf.data_ptr(), rows, cb, first, hs, ws,
                             torch.get_num_threads())
    return buf


def pooled_to_grid(grad: torch.Tensor, idx: torch.Tensor, pool: tuple[int, int], hw: tuple[int, int], first: int,
                   rows: int, hs: int, ws: int) -> torch.Tensor:
    """`to_grid` of the gradient of a conv whose `hw` output a max pool of `pool` windows tiled, written straight
    from the pooled gradient `grad` and its arg-max taps `idx` (`direct_conv_pool`): the scattered gradient
    (`max_pool_scatter`) on the grid, without storing it first.

    Shape:
        grad, idx: `(N, H // pH, W // pW, C)` contiguous (float32, uint8) -> `(rows, C)`.
    """
    n, c = grad.shape[0], grad.shape[-1]
    assert grad.is_contiguous() and idx.is_contiguous() and idx.dtype == torch.uint8 and idx.shape == grad.shape
    assert grad.shape[1:3] == tiled_pool_hw(hw, pool) and hs >= hw[0] and ws >= hw[1]
    assert rows >= first + n * hs * ws, "pooled_to_grid: the grid does not hold the gradient"
    buf = grad.new_empty((rows, c))
    library().cnnexp_pooled_to_grid(grad.data_ptr(), idx.data_ptr(), n, c, *hw, *pool, buf.data_ptr(), rows, first,
                                    hs, ws, torch.get_num_threads())
    return buf


@functools.lru_cache(maxsize=256)
def _offsets(offsets: tuple[int, ...]) -> torch.Tensor:
    return torch.tensor(offsets, dtype=torch.int64)


@functools.cache
def direct_tiles(which: str) -> list[tuple[int, int, int]]:
    """The kernel's register-tile variants `(R, V, KW)` for "conv" (forward and input gradient) or "weight_grad"
    (`(RC, V, KW)`), read from the library (native/grid_conv.cpp holds the one table)."""
    lib, k = library(), int(which == "weight_grad")
    shape = (ctypes.c_int * 3)()
    out = []
    for i in range(lib.cnnexp_tile_count(k)):
        lib.cnnexp_tile_shape(k, i, shape)
        out.append(tuple(shape))
    return out


def _check_tile(used: int, tile: int, what: str) -> None:
    if used < 0:
        raise ValueError(f"{what}: register tile {tile} cannot run this shape (see kernels.direct_tiles)")


def _conv_operands(buf: torch.Tensor, grid: GridShape, offsets: list[int], w_taps: torch.Tensor, c_out: int,
                   bias: torch.Tensor | None) -> list:
    """The leading arguments of `cnnexp_grid_conv` and `cnnexp_grid_conv_pool` (grid, weights, offsets, bias),
    checked; the tensors they point to are kept alive by the cache (`_offsets`) or the caller."""
    n, hs, ws = grid[:3]
    assert buf.is_contiguous() and w_taps.shape[1] == buf.shape[1] and buf.shape[0] >= n * hs * ws + max(offsets)
    assert w_taps.is_contiguous() and (bias is None or bias.is_contiguous())
    offs = _offsets(tuple(offsets))
    return [buf.data_ptr(), buf.shape[1], w_taps.data_ptr(), c_out, w_taps.shape[2], offs.data_ptr(), len(offsets),
            None if bias is None else bias.data_ptr()]


def direct_conv(buf: torch.Tensor, grid: GridShape, offsets: list[int], w_taps: torch.Tensor, c_out: int,
         bias: torch.Tensor | None = None, out: torch.Tensor | None = None, tile: int = -1) -> torch.Tensor:
    """`out[n, y, x] = sum_t buf[p + offsets[t]] @ w_taps[t] + bias`, p = (n*Hs + y)*Ws + x the pixel's grid row.

    `tile` picks a register-tile variant (an index into `direct_tiles("conv")`; -1: the kernel's built-in choice);
    a variant that cannot run the shape raises ValueError.

    Shape:
        buf: `(>= N*Hs*Ws + max(offsets), C)` contiguous; grid: `(N, Hs, Ws, H_out, W_out)`;
        w_taps: `(T, C, C_out')` from `tap_weights`; bias: `(C_out,)` or None -> `(N, H_out, W_out, C_out)`,
        written into `out` when given (contiguous, e.g. the `nhwc_view` of a channels-last tensor).
    """
    n, hs, ws, ho, wo = grid
    out = buf.new_empty((n, ho, wo, c_out)) if out is None else out
    assert out.shape == (n, ho, wo, c_out) and out.is_contiguous()
    w_taps, bias = w_taps.contiguous(), None if bias is None else bias.contiguous()
    used = library().cnnexp_grid_conv(*_conv_operands(buf, grid, offsets, w_taps, c_out, bias), out.data_ptr(),
                                      n, hs, ws, ho, wo, torch.get_num_threads(), tile)
    _check_tile(used, tile, "conv")
    return out


def direct_conv_pool(buf: torch.Tensor, grid: GridShape, offsets: list[int], w_taps: torch.Tensor, c_out: int,
                     bias: torch.Tensor | None, pool: tuple[int, int], out: torch.Tensor, idx: torch.Tensor,
                     tile: int = -1, relu: bool = False) -> None:
    """`direct_conv` max pooled by `pool` = (pH, pW) windows that tile its output ('valid', stride = pool size),
    without storing the convolution's output: writes the pooled maxima into `out` and each one's arg-max tap
    (`i * pW + j` in its window, the first maximum or the first NaN) into `idx` (`native/pool_argmax.h`). `relu`:
    the maxima then go through ReLU, and those it clips to zero get the arg-max `CLIPPED` (no tap: no gradient).

    Shape:
        buf, grid, offsets, w_taps, bias: as `direct_conv`; out: `(N, H_out // pH, W_out // pW, C_out)` float32 and
        idx: the same shape, uint8, both contiguous.
    """
    n, hs, ws, ho, wo = grid
    pooled = (n, *tiled_pool_hw((ho, wo), pool), c_out)
    assert out.shape == idx.shape == pooled and out.is_contiguous() and idx.is_contiguous() and idx.dtype == torch.uint8
    w_taps, bias = w_taps.contiguous(), None if bias is None else bias.contiguous()
    used = library().cnnexp_grid_conv_pool(*_conv_operands(buf, grid, offsets, w_taps, c_out, bias), out.data_ptr(),
                                           idx.data_ptr(), n, hs, ws, ho, wo, *pool, int(relu), torch.get_num_threads(),
                                           tile)
    _check_tile(used, tile, "conv")


def direct_weight_grad(buf: torch.Tensor, grad: torch.Tensor, grid: GridShape, offsets: list[int],
                       tile: int = -1, idx: torch.Tensor | None = None, pool: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """`dw[t] = sum over pixels of buf[p + offsets[t]]^T grad[n, y, x]`, the weight gradient.

    `tile`: an index into `direct_tiles("weight_grad")`, or -1 for the kernel's built-in choice. With `idx`, the
    conv was followed by a max pool of `pool` windows that tile its output: `grad` is the pooled gradient and idx
    its arg-max taps (`direct_conv_pool`), expanded a few rows at a time inside the kernel (the full-size gradient
    is never stored), with the same sums as on the scattered gradient (`max_pool_scatter`).

    Shape:
        buf: `(>= N*Hs*Ws + max(offsets), C)` contiguous; grad: `(N, H_out, W_out, C_out')` contiguous, C_out'
        a multiple of the vector width (with idx: `(N, H_out // pH, W_out // pW, C_out')`, and idx the same shape,
        uint8); grid: `(N, Hs, Ws, H_out, W_out)` -> `(T, C, C_out')`.
    """
    n, hs, ws, ho, wo = grid
    c_out_p = grad.shape[-1]
    assert buf.is_contiguous() and grad.is_contiguous() and c_out_p % vec_width() == 0
    assert grad.shape == (n, *tiled_pool_hw((ho, wo), pool), c_out_p) and buf.shape[0] >= n * hs * ws + max(offsets)
    dw = buf.new_zeros((len(offsets), buf.shape[1], c_out_p))
    offs = _offsets(tuple(offsets))
    common = (c_out_p, offs.data_ptr(), len(offsets), dw.data_ptr(), n, hs, ws, ho, wo)
    if idx is None:
        used = library().cnnexp_grid_conv_weight_grad(buf.data_ptr(), buf.shape[1], grad.data_ptr(), *common,
                                                      torch.get_num_threads(), tile)
    else:
        assert idx.shape == grad.shape and idx.is_contiguous() and idx.dtype == torch.uint8
        used = library().cnnexp_grid_conv_weight_grad_pooled(buf.data_ptr(), buf.shape[1], grad.data_ptr(),
                                                             idx.data_ptr(), *common, *pool, torch.get_num_threads(),
                                                             tile)
    _check_tile(used, tile, "weight_grad")
    return dw


# --- max pooling (native/max_pool.cpp) -------------------------------------------------------------------------

CLIPPED = 255  # the arg-max byte of a pooled value ReLU clipped to zero (native/pool_argmax.h): no tap, no gradient


def max_pool_usable(x: torch.Tensor) -> bool:
    """CPU float32 in channels_last memory format (as the custom conv's outputs are), kernels built."""
    return x.is_contiguous(memory_format=torch.channels_last) and usable(x)


def _pool_args(x_shape: torch.Size, g: WindowGeometry) -> list[int]:
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ho, wo), (top, _, left, _) = g.kernel, g.stride, g.out_hw, g.pads
    return [n, h, w, c, ho, wo, kh, kw, sh, sw, top, left]


def max_pool_forward(x: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """Shape: x `(N, C, H, W)` channels_last -> `(N, C, H_out, W_out)` channels_last."""
    xh = nhwc_view(x)  # (N, H, W, C), contiguous
    y = empty_channels_last(x, (*x.shape[:2], *g.out_hw))
    library().cnnexp_max_pool(xh.data_ptr(), nhwc_view(y).data_ptr(), *_pool_args(x.shape, g), torch.get_num_threads())
    return y


def max_pool_backward(x: torch.Tensor, y: torch.Tensor, grad_out: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """Shape: x `(N, C, H, W)` and y, grad_out `(N, C, H_out, W_out)` -> `(N, C, H, W)` channels_last."""
    xh, yh = nhwc_view(x), nhwc_view(y)
    gy = nhwc_view(grad_out).contiguous()  # (N, H_out, W_out, C); no copy when already channels_last
    assert xh.is_contiguous() and yh.is_contiguous()
    gx = empty_channels_last(x, x.shape)
    library().cnnexp_max_pool_backward(
        xh.data_ptr(), yh.data_ptr(), gy.data_ptr(), nhwc_view(gx).data_ptr(), *_pool_args(x.shape, g),
        torch.get_num_threads(),
    )
    return gx


def max_pool_argmax(x: torch.Tensor, pool: tuple[int, int], relu: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The max pool of x by `pool` = (pH, pW) windows that tile it ('valid', stride = pool size), and each
    maximum's arg-max tap in its window (as `direct_conv_pool`, `relu` too).

    Shape: x `(N, C, H, W)` channels_last -> `(N, C, H // pH, W // pW)` channels_last float32 and uint8.
    """
    assert nhwc_view(x).is_contiguous(), "max_pool_argmax: x must be dense channels_last"
    n, c, h, w = x.shape
    shape = (n, c, *tiled_pool_hw((h, w), pool))
    y, idx = empty_channels_last(x, shape), empty_channels_last(x, shape, torch.uint8)
    library().cnnexp_max_pool_argmax(nhwc_view(x).data_ptr(), nhwc_view(y).data_ptr(), nhwc_view(idx).data_ptr(),
                                     n, h, w, c, *pool, int(relu), torch.get_num_threads())
    return y, idx


def max_pool_scatter(grad_out: torch.Tensor, idx: torch.Tensor, x_hw: tuple[int, int],
                     pool: tuple[int, int]) -> torch.Tensor:
    """The gradient of `max_pool_argmax`: each upstream value on the tap `idx` names, zeros elsewhere.

    Shape: grad_out and idx `(N, C, H // pH, W // pW)` -> `(N, C, H, W)` channels_last.
    """
    gy, ih = nhwc_view(grad_out).contiguous(), nhwc_view(idx)
    assert ih.is_contiguous() and idx.dtype == torch.uint8 and gy.shape == ih.shape
    assert gy.shape[1:3] == tiled_pool_hw(x_hw, pool), "max_pool_scatter: x_hw does not match"
    n, c = grad_out.shape[:2]
    gx = empty_channels_last(grad_out, (n, c, *x_hw))
    library().cnnexp_max_pool_scatter(gy.data_ptr(), ih.data_ptr(), nhwc_view(gx).data_ptr(), n, *x_hw, c, *pool,
                                      torch.get_num_threads())
    return gx


def pooled_bias_grad(grad_out: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The bias gradient of a conv + max pool + ReLU (`direct_conv_pool` with `relu`): the sum over pixels of
    grad_out where idx is not `CLIPPED`, in one pass.

    Shape: grad_out, idx `(N, C, Hp, Wp)` channels_last (float32, uint8) -> `(C,)`.
    """
    g, ih = nhwc_view(grad_out), nhwc_view(idx)
    assert g.is_contiguous() and ih.is_contiguous() and idx.dtype == torch.uint8 and g.shape == ih.shape
    out = grad_out.new_empty(grad_out.shape[1])
    library().cnnexp_pooled_bias_grad(g.data_ptr(), ih.data_ptr(), g.numel() // g.shape[-1], g.shape[-1],
                                      out.data_ptr(), torch.get_num_threads())
    return out
