"""A convolution and the max pool after it as one op, `cnnexp::conv2d_max_pool`, with a hand-written backward.

The lecture model repeats `Conv2D -> MaxPool2D(2)`. Run apart, the conv writes its full-size output, the pool reads
it back, and the pool's backward reads it a third time to find each window's arg-max: the first conv's output, the
largest map of the step, passes through memory three times. Here the pool is the conv's epilogue:

    y, idx = max pool of conv(x, W) + b over pH x pW windows that tile it    # (N, C_out, H_out//pH, W_out//pW)

with `idx` the arg-max tap `i*pW + j` of each window (one byte): the FIRST maximum in row-major window order,
or the first NaN, the rule of `max_pool2d`. With `relu` (the lecture's Conv2D activation) y is ReLU'd in the same
epilogue, and a value ReLU clips to zero gets `idx = CLIPPED`, which names no tap: ReLU's backward is then the
scatter's own zero, with no ReLU output stored or read again. The CPU kernel (`grid_direct.forward_pool`)
computes the conv rows one pooled row needs into a small per-thread buffer and pools them there, so the full-size
output is never stored; other paths (im2col, grid_gemm) pool their output with `kernels.max_pool_argmax`, and
other devices take the tap-by-tap PyTorch path below. On the CPU the path is the one planned for the conv's
forward (`conv2d.planned`, the same decision and key), so the fused op and `conv2d` sum in the same order and
agree exactly. Backward:

    G     = dL/dy scattered onto the taps idx names, zeros elsewhere    # (N, C_out, H_out, W_out), the pool's backward
    dL/dx, dL/dW = the conv's own gradients of G; dL/db = sum of dL/dy (each value lands once in G) where not
                   CLIPPED

as two ops that take dL/dy and idx (`cnnexp::max_pool_conv2d_input_grad`, `..._weight_grad`): their CPU kernel
writes G straight onto the input gradient's padded grid, and expands it a few rows at a time inside the weight
gradient's sum, so G is never stored either. The other paths (and devices) scatter G first.

In eager mode on the CPU, `conv2d_max_pool` calls the same kernels from a plain autograd Function
(`_EagerConvPool`, where `eager_fast_path` allows it) instead of through the dispatcher, and keeps x's grid from the
forward for the weight gradient; anything that watches the dispatcher (torch.compile, export, modes, the profiler)
gets the registered ops.

Only windows that tile the conv's output ('valid', stride = pool size, at most 255 taps) are fused; the rows and
columns 'valid' drops get zero gradient. `models.fusion` runs a Keras `Conv2D -> MaxPool2D` pair through this op
where `fusable` says it applies: the output and gradients are the unfused pair's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from . import grid_direct, kernels
from .conv2d import builtin_path, planned
from .geometry import (
    IntPair, Padding, WindowGeometry, autocast_operands, check_same_dtype, conv_geometry, op_geometry, pair,
    tiled_pool_hw,
)
from .im2col import empty_channels_last

MAX_TAPS = 255  # an arg-max is one byte: taps 0..254, so that 255 names none
CLIPPED = kernels.CLIPPED  # 255: the arg-max of a value ReLU clipped to zero (it gets no gradient)


def _pooled_shape(x: torch.Tensor, c_out: int, g: WindowGeometry, pool: list[int]) -> tuple[int, int, int, int]:
    return (x.shape[0], c_out, *tiled_pool_hw(g.out_hw, pool))


def _argmax_taps(y: torch.Tensor, pool: list[int], relu: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool of y with its arg-max, tap by tap with PyTorch ops (any device and dtype); `relu`: then ReLU'd, the
    clipped values' arg-max `CLIPPED`.

    Shape: y `(N, C, H, W)` -> `(N, C, H // pH, W // pW)` channels_last, and the arg-max taps (uint8).
    """
    (ph, pw), (h, w) = pool, y.shape[2:]
    hp, wp = h // ph, w // pw
    best = y[:, :, 0 : hp * ph : ph, 0 : wp * pw : pw].clone()
    idx = torch.zeros_like(best, dtype=torch.uint8)
    for t in range(1, ph * pw):
        i, j = divmod(t, pw)
        v = y[:, :, i : hp * ph : ph, j : wp * pw : pw]
        take = (v > best) | (v.isnan() & ~best.isnan())  # larger, or the first NaN
        best = torch.where(take, v, best)
        idx = torch.where(take, torch.full_like(idx, t), idx)
    if relu:  # max(best, 0) with NaN kept, as torch.relu
        clipped = best <= 0
        best, idx = best.masked_fill(clipped, 0), idx.masked_fill(clipped, CLIPPED)
    return best.contiguous(memory_format=torch.channels_last), idx.contiguous(memory_format=torch.channels_last)


def _scatter_taps(grad_out: torch.Tensor, idx: torch.Tensor, x_hw: list[int], pool: list[int]) -> torch.Tensor:
    """grad_out placed on the taps idx names, zeros elsewhere, with PyTorch ops (any device and dtype).

    Shape: grad_out, idx `(N, C, Hp, Wp)` -> `(N, C, *x_hw)` channels_last.
    """
    (ph, pw), (hp, wp) = pool, grad_out.shape[2:]
    grad_x = empty_channels_last(grad_out, (*grad_out.shape[:2], *x_hw)).zero_()
    zero = grad_out.new_zeros(())
    for t in range(ph * pw):
        i, j = divmod(t, pw)
        grad_x[:, :, i : hp * ph : ph, j : wp * pw : pw] = torch.where(idx == t, grad_out, zero)
    return grad_x


# --- cnnexp::conv2d_max_pool -------------------------------------------------------------------------------------


def _forward_kernel(x, weight, bias, geom: WindowGeometry, pool: tuple[int, int], relu: bool,
                    keep_grid: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The CPU forward on the planned path: (y, idx, and with `keep_grid` x's grid when that path built one (the
    compiled kernel), for the weight gradient to reuse; else None)."""
    kept: list[torch.Tensor] = []

    def run(path, **kw):
        kept.clear()  # the planner may run several paths before the chosen one
        if path is grid_direct:
            grid = grid_direct.x_grid(x, geom)
            if keep_grid:
                kept.append(grid)
            return grid_direct.forward_pool(x, weight, bias, geom, pool, relu=relu, grid=grid, **kw)
        y = path.forward(x, weight, bias, geom).contiguous(memory_format=torch.channels_last)
        if kernels.max_pool_usable(y):
            return kernels.max_pool_argmax(y, pool, relu)
        return _argmax_taps(y, list(pool), relu)

    # the conv forward's own decision (and key): fused or not, a forward computes the same sums in the same order
    y, idx = planned("forward", geom, weight.shape[0], (tuple(x.shape[1:]), tuple(weight.shape)), (x, weight, bias),
                     run)
    return y, idx, (kept[0] if kept else None)


def _forward_cpu(x, weight, bias, stride, pads, dilation, pool, relu=False) -> tuple[torch.Tensor, torch.Tensor]:
    geom = op_geometry(x.shape[2:], weight.shape[2:], stride, pads, dilation)
    return _forward_kernel(x, weight, bias, geom, tuple(pool), relu)[:2]


def _forward_portable(x, weight, bias, stride, pads, dilation, pool, relu=False) -> tuple[torch.Tensor, torch.Tensor]:
    geom = op_geometry(x.shape[2:], weight.shape[2:], stride, pads, dilation)
    return _argmax_taps(builtin_path(geom, native=False).forward(x, weight, bias, geom), pool, relu)


conv2d_max_pool_op = torch.library.custom_op(
    "cnnexp::conv2d_max_pool", _forward_portable, mutates_args=(),
    schema="(Tensor x, Tensor weight, Tensor? bias, int[] stride, int[] pads, int[] dilation, int[] pool, "
           "bool relu=False) -> (Tensor, Tensor)",
)
"""`cnnexp::conv2d_max_pool(x, weight, bias, stride, pads, dilation, pool, relu)` -> (pooled y channels_last,
arg-max taps uint8): `cnnexp::conv2d` followed by a max pool of `pool` windows that tile its output, and with
`relu` a ReLU (arg-max `CLIPPED` where it clips)."""
conv2d_max_pool_op.register_kernel("cpu")(_forward_cpu)
conv2d_max_pool_op.register_kernel("cuda")(_forward_portable)


@conv2d_max_pool_op.register_fake
def _conv2d_max_pool_fake(x, weight, bias, stride, pads, dilation, pool, relu=False):
    geom = op_geometry(x.shape[2:], weight.shape[2:], stride, pads, dilation)
    shape = _pooled_shape(x, weight.shape[0], geom, pool)
    return empty_channels_last(x, shape), empty_channels_last(x, shape, torch.uint8)


def _scatter_cpu(grad_out, idx, x_hw, pool) -> torch.Tensor:
    """`_scatter_taps` with the compiled kernel where it runs (CPU float32, idx channels_last)."""
    if kernels.usable(grad_out) and idx.is_contiguous(memory_format=torch.channels_last):
        return kernels.max_pool_scatter(grad_out, idx, tuple(x_hw), tuple(pool))
    return _scatter_taps(grad_out, idx, x_hw, pool)


# --- cnnexp::max_pool_conv2d_input_grad, cnnexp::max_pool_conv2d_weight_grad --------------------------------------
# The conv's two gradients from the pooled gradient and its arg-max taps: each is the conv's own gradient op of the
# scattered gradient (`_scatter_taps`). On the CPU they take the decision (and key) that op plans for that
# gradient, so they compute the same sums in the same order; the compiled kernel never stores the scattered
# gradient (`grid_direct.pooled_usable`), the other paths scatter it first.


def _pooled_cpu(direction: str, geom: WindowGeometry, out_channels: int, shapes: tuple, operands: tuple,
                grad_out: torch.Tensor, idx: torch.Tensor, pool: list[int], compute) -> torch.Tensor:
    """`compute(path, grad, **kw)` on the planned path of `direction`: grad the pooled gradient with `idx=idx,
    pool=pool` for the compiled kernel, else the scattered gradient."""

    def run(path, **kw):
        if path is grid_direct and grid_direct.pooled_usable(grad_out, idx):
            return compute(path, grad_out, idx=idx, pool=tuple(pool), **kw)
        return compute(path, _scatter_cpu(grad_out, idx, list(geom.out_hw), pool), **kw)

    return planned(direction, geom, out_channels, shapes, operands, run)


def _input_grad_kernel(grad_out, idx, weight, x_hw, geom: WindowGeometry, pool) -> torch.Tensor:
    shapes = ((weight.shape[0], *geom.out_hw), tuple(weight.shape))  # conv2d_input_grad's key
    return _pooled_cpu("input_grad", geom, weight.shape[1], shapes, (grad_out, weight), grad_out, idx, pool,
                       lambda path, grad, **kw: path.input_grad(grad, weight, tuple(x_hw), geom, **kw))


def _pooled_input_grad_cpu(grad_out, idx, weight, x_hw, stride, pads, dilation, pool) -> torch.Tensor:
    return _input_grad_kernel(grad_out, idx, weight, x_hw, op_geometry(x_hw, weight.shape[2:], stride, pads,
                                                                       dilation), pool)


def _pooled_input_grad_portable(grad_out, idx, weight, x_hw, stride, pads, dilation, pool) -> torch.Tensor:
    geom = op_geometry(x_hw, weight.shape[2:], stride, pads, dilation)
    grad = _scatter_taps(grad_out, idx, list(geom.out_hw), pool)
    return builtin_path(geom, native=False).input_grad(grad, weight, tuple(x_hw), geom)


def _gradient_op(name: str, args: str, doc: str, cpu, portable, fake):
    """A custom op `cnnexp::<name>(Tensor grad_out, Tensor idx, <args>, int[] stride, int[] pads, int[] dilation,
    int[] pool) -> Tensor` with its CPU, CUDA (portable) and fake kernels."""
    op = torch.library.custom_op(
        f"cnnexp::{name}", portable, mutates_args=(),
        schema=f"(Tensor grad_out, Tensor idx, {args}, int[] stride, int[] pads, int[] dilation, int[] pool) -> Tensor",
    )
    op.__doc__ = doc
    op.register_kernel("cpu")(cpu)
    op.register_kernel("cuda")(portable)
    op.register_fake(fake)
    return op


def _pooled_input_grad_fake(grad_out, idx, weight, x_hw, stride, pads, dilation, pool):
    return empty_channels_last(grad_out, (grad_out.shape[0], weight.shape[1], *x_hw))


pooled_input_grad_op = _gradient_op(
    "max_pool_conv2d_input_grad", "Tensor weight, int[] x_hw",
    "dL/dx `(N, C_in, H, W)` (channels_last) of `conv2d_max_pool` from the pooled gradient and its arg-max taps.",
    _pooled_input_grad_cpu, _pooled_input_grad_portable, _pooled_input_grad_fake,
)


def _weight_grad_kernel(grad_out, idx, x, geom: WindowGeometry, pool, grid=None) -> torch.Tensor:
    """The CPU weight gradient; `grid`: x's grid that the forward kept (`_forward_kernel`), for the compiled kernel."""
    c_out = grad_out.shape[1]
    shapes = (tuple(x.shape[1:]), (c_out, *geom.out_hw))  # conv2d_weight_grad's key
    kept = {} if grid is None else {"grid": grid}
    return _pooled_cpu("weight_grad", geom, c_out, shapes, (grad_out, x), grad_out, idx, pool,
                       lambda path, grad, **kw: path.weight_grad(x, grad, geom, **kw,
                                                                 **(kept if path is grid_direct else {})))


def _pooled_weight_grad_cpu(grad_out, idx, x, kernel, stride, pads, dilation, pool) -> torch.Tensor:
    return _weight_grad_kernel(grad_out, idx, x, op_geometry(x.shape[2:], kernel, stride, pads, dilation), pool)


def _pooled_weight_grad_portable(grad_out, idx, x, kernel, stride, pads, dilation, pool) -> torch.Tensor:
    geom = op_geometry(x.shape[2:], kernel, stride, pads, dilation)
    return builtin_path(geom, native=False).weight_grad(x, _scatter_taps(grad_out, idx, list(geom.out_hw), pool), geom)


def _pooled_weight_grad_fake(grad_out, idx, x, kernel, stride, pads, dilation, pool):
    return x.new_empty((grad_out.shape[1], x.shape[1], kernel[0], kernel[1]))


pooled_weight_grad_op = _gradient_op(
    "max_pool_conv2d_weight_grad", "Tensor x, int[] kernel",
    "dL/dW `(C_out, C_in, kH, kW)` of `conv2d_max_pool` from the pooled gradient and its arg-max taps.",
    _pooled_weight_grad_cpu, _pooled_weight_grad_portable, _pooled_weight_grad_fake,
)


# --- the hand-written backward -------------------------------------------------------------------------------------


def _setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
    x, weight, bias, stride, pads, dilation, pool, *relu = inputs  # the dispatcher drops relu when it is False
    ctx.save_for_backward(x, weight, output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.window = (list(stride), list(pads), list(dilation))
    ctx.pool = list(pool)
    ctx.has_bias = bias is not None
    ctx.relu = bool(relu and relu[0])


def _bias_grad(grad_out: torch.Tensor, idx: torch.Tensor, relu: bool) -> torch.Tensor:
    """dL/db `(C_out,)`: each upstream value lands once in G, unless ReLU clipped it (`CLIPPED`)."""
    if not relu:
        return grad_out.sum(dim=(0, 2, 3))
    if kernels.max_pool_usable(grad_out) and idx.is_contiguous(memory_format=torch.channels_last):
        return kernels.pooled_bias_grad(grad_out, idx)
    return torch.where(idx == CLIPPED, 0, grad_out).sum(dim=(0, 2, 3))


def _backward(ctx: Any, grad_out: torch.Tensor, _grad_idx: Any) -> tuple[torch.Tensor | None, ...]:
    x, weight, idx = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    grad_x = pooled_input_grad_op(grad_out, idx, weight, list(x.shape[2:]), *ctx.window, ctx.pool) if need_x else None
    grad_w = pooled_weight_grad_op(grad_out, idx, x, list(weight.shape[2:]), *ctx.window, ctx.pool) if need_w else None
    grad_b = _bias_grad(grad_out, idx, ctx.relu) if need_b and ctx.has_bias else None
    return grad_x, grad_w, grad_b, None, None, None, None, None


conv2d_max_pool_op.register_autograd(_backward, setup_context=_setup_context)


# --- the eager fast path --------------------------------------------------------------------------------------------


class _EagerConvPool(torch.autograd.Function):
    """`conv2d_max_pool_op` and its backward (the same CPU kernels, the same planned paths, the same results), called
    straight from a plain autograd Function where `eager_fast_path` allows it. Through the dispatcher, a custom op
    and its two gradient ops add fixed Python a layer (argument defaults, alias checks, redispatch; docs/benchmarks.md
    has the cost), paid in every training step of the lecture model. It also keeps x's grid from the forward for the
    weight gradient, and saves it instead of x (x is a view of it: `grid_direct.x_from_grid`), so the backward does
    not lay x out again."""

    @staticmethod
    def forward(ctx: Any, x, weight, bias, geom: WindowGeometry, pool: tuple[int, int], relu: bool):
        y, idx, grid = _forward_kernel(x, weight, bias, geom, pool, relu, keep_grid=ctx.needs_input_grad[1])
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(x if grid is None else grid, weight, idx)
        ctx.geom, ctx.pool, ctx.relu, ctx.x_shape = geom, pool, relu, tuple(x.shape)
        ctx.has_bias, ctx.from_grid = bias is not None, grid is not None
        return y, idx

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_idx: Any) -> tuple[torch.Tensor | None, ...]:
        saved, weight, idx = ctx.saved_tensors
        grid = saved if ctx.from_grid else None
        x = saved if grid is None else grid_direct.x_from_grid(grid, ctx.x_shape, ctx.geom)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = _input_grad_kernel(grad_out, idx, weight, ctx.x_shape[2:], ctx.geom, ctx.pool) if need_x else None
        grad_w = _weight_grad_kernel(grad_out, idx, x, ctx.geom, ctx.pool, grid) if need_w else None
        grad_b = _bias_grad(grad_out, idx, ctx.relu) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b, None, None, None


_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


def eager_fast_path(*tensors: torch.Tensor | None) -> bool:
    """Whether `conv2d_max_pool` may run `_EagerConvPool` instead of the registered op: plain CPU float32 tensors
    (no subclass, e.g. a FakeTensor) with the compiled kernels, and nothing that watches or transforms the dispatcher
    (torch.compile, a TorchFunctionMode or TorchDispatchMode, torch.func transforms, the profiler, which then names
    the registered ops)."""
    return (
        all(t is None or type(t) in _PLAIN_TENSORS for t in tensors)
        and not torch.compiler.is_compiling()
        and not torch._C._is_torch_function_mode_enabled()
        and not is_in_torch_dispatch_mode()
        and not torch._C._are_functorch_transforms_active()
        and not torch.autograd._profiler_enabled()
        and grid_direct.usable(*tensors)
    )


def fusable(x: torch.Tensor, weight: torch.Tensor, pool_size: IntPair, pool_strides: IntPair,
            pool_padding: Padding) -> bool:
    """Whether a stride-1 `conv2d(x, weight)` and the max pool after it may run as `conv2d_max_pool` here, and it
    pays: CPU float32 with the compiled kernels (eager: not under autocast, tracing, torch.compile or export), and
    a 'valid' pool whose windows tile the conv's output (stride = pool size, at most `MAX_TAPS` taps)."""
    if torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export() or torch.is_autocast_enabled("cpu"):
        return False  # first: a compiled graph must not trace into the kernels' lookup
    pool = pair(pool_size)
    return (
        x.dim() == 4 and pool_padding in ("valid", 0, (0, 0)) and pair(pool_strides) == pool
        and pool[0] * pool[1] <= MAX_TAPS and grid_direct.usable(x, weight)
    )


def conv2d_max_pool(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                    padding: Padding = "valid", dilation: IntPair = 1, pool_size: IntPair = 2,
                    relu: bool = False) -> torch.Tensor:
    """`max_pool2d(conv2d(x, weight, bias, padding=padding, dilation=dilation), pool_size)` (stride 1, 'valid' pool
    with stride = pool size) as one op that never stores the conv's full-size output; `relu`: ReLU'd too (ReLU
    after the pool is ReLU before it: `models.fusion`).

    Shape:
        x `(N, C_in, H, W)`, weight `(C_out, C_in, kH, kW)`, bias `(C_out,)` -> `(N, C_out, H_out // pH, W_out // pW)`,
        channels_last; H_out, W_out as `conv2d`.

    Raises:
        ValueError: as `conv2d`, or a pool window larger than the conv's output or of more than `MAX_TAPS` taps.
    """
    geom = conv_geometry(x, weight, bias, 1, padding, dilation, op="conv2d")
    pool = pair(pool_size)
    if pool[0] * pool[1] > MAX_TAPS or pool[0] > geom.out_hw[0] or pool[1] > geom.out_hw[1]:
        raise ValueError(f"conv2d_max_pool: a {pool[0]}x{pool[1]} pool cannot pool the conv's {geom.out_hw} output "
                         f"(at most {MAX_TAPS} taps, no larger than the output); use conv2d and max_pool2d")
    (x, weight, bias), autocast_off = autocast_operands(x, weight, bias)  # as conv2d: one dtype throughout
    check_same_dtype("conv2d_max_pool", x, weight=weight, bias=bias)
    with autocast_off:
        if eager_fast_path(x, weight, bias):
            y, _ = _EagerConvPool.apply(x, weight, bias, geom, tuple(pool), relu)
        else:
            y, _ = conv2d_max_pool_op(x, weight, bias, [1, 1], list(geom.pads), list(geom.dilation), list(pool), relu)
    return y
