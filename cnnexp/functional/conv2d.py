"""The custom 2-D convolution: three `torch.library` custom ops (`cnnexp::conv2d`, `cnnexp::conv2d_input_grad`,
`cnnexp::conv2d_weight_grad`) wired together by a hand-written backward.

Forward (the lecture's "slide the kernel, multiply, sum over all channels, add the bias", batched):

    xp   = pad(x) in NHWC                                  # (N, Hp, Wp, C_in)
    cols = every window of xp as a row                     # (N*H_out*W_out, kH*kW*C_in)
    y    = cols @ W^T + bias                               # (N*H_out*W_out, C_out) == NHWC output

Backward, with g = dL/dy as `(N*H_out*W_out, C_out)`:

    dL/dbias   = sum of g over rows                        # (C_out,)
    dL/dW      = g^T @ cols                                # (C_out, kH*kW*C_in)
    dL/dx      = g @ W scattered back onto the pixels each window read (col2im), unpadded; for stride 1
                 equivalently a correlation of g with the flipped kernel (see grid_gemm.py)

Three implementations of these formulas, picked per call inside the ops: stride 1 on CPU float32 runs the
compiled register-tiled kernel straight from the padded grid, with no cols matrix at all (`grid_direct`,
`kernels.direct_conv`); stride 1 elsewhere (CUDA, float64, no C++ compiler) builds cols block by block on the
same grid and multiplies (`grid_gemm`); other strides and tiny maps use the whole-batch im2col above
(`im2col`). Each op picks its own path, so a gradient never depends on how the forward ran.

Why custom ops: torch.compile, torch.export and the ONNX exporter see each op as one opaque node with a fake
(shape-only) implementation, and never trace into the kernels, the compiled library's lookup or `data_ptr`.
The CPU kernel (compiled kernel or PyTorch fallback) and the portable PyTorch kernel (CUDA and any other
device) are registered per device. The backward saves x and the weight (not a padded copy: the weight
gradient rebuilds the padded grid it reads) and calls the two gradient ops; dL/dbias is a plain sum.

No torch convolution op is called (no F.conv2d, conv_transpose, torch.nn.grad, aten.convolution*),
and nothing is differentiated by autograd: the three gradients are written out above. The output is
a dense `(N, C_out, H_out, W_out)` tensor with channels-last strides, which is free (it is the GEMM's
output) and lets the next conv and pool read NHWC data without a transpose.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from . import grid_direct, grid_gemm, im2col, kernels, planner
from .geometry import IntPair, Padding, WindowGeometry, autocast_operands, check_same_dtype, conv_geometry, op_geometry
from .grouped_conv2d import conv2d_grouped
from .im2col import empty_channels_last

GRID_MAX_OVERHEAD = 2.0  # use the padded-grid path while its dropped margin outputs are at most 100 % extra


def _use_grid(geom: WindowGeometry) -> bool:
    """Stride 1 and a small padding margin: the grid path; else (strides, tiny maps) the im2col path."""
    if geom.stride != (1, 1):
        return False
    hs, ws, _ = grid_gemm.grid_dims(geom)
    return hs * ws <= GRID_MAX_OVERHEAD * geom.out_hw[0] * geom.out_hw[1]


def builtin_path(geom: WindowGeometry, native: bool) -> ModuleType:
    """The module that computes this conv: `grid_direct` (compiled kernel, when `native`), `grid_gemm` or `im2col`."""
    if not _use_grid(geom):
        return im2col
    return grid_direct if native else grid_gemm


# --- the CPU path of each op, planned ----------------------------------------------------------------------------
# On the CPU each direction (forward, input gradient, weight gradient) of each conv geometry runs the implementation
# that `planner` measured fastest on this machine (CNNEXP_PLAN=measure, the default): im2col, grid_gemm, or the
# compiled kernel with one of its register-tile variants. The built-in choice above (`_path`) is the estimate.

_PATH_NAMES = {grid_direct: "direct", grid_gemm: "grid_gemm", im2col: "im2col"}
_TILE_TABLE = {"forward": "conv", "input_grad": "conv", "weight_grad": "weight_grad"}


@functools.lru_cache(maxsize=1024)
def _candidates(direction: str, geom: WindowGeometry, native: bool,
                out_channels: int) -> dict[str, tuple[ModuleType, dict[str, int]]]:
    """name -> (path module, extra arguments) of every implementation that can compute `direction` of this conv;
    `out_channels` is the channel count the direction writes (C_out forward, C_in for dL/dx, C_out for dL/dW)."""
    found: dict[str, tuple[ModuleType, dict[str, int]]] = {"im2col": (im2col, {})}
    if geom.stride == (1, 1):
        found["grid_gemm"] = (grid_gemm, {})
        if native:
            found["direct"] = (grid_direct, {})
            vecs = kernels.padded_channels(out_channels) // kernels.vec_width()
            rows_of_three = geom.kernel[1] % 3 == 0 and geom.dilation[1] == 1
            taps = geom.kernel[0] * geom.kernel[1]
            for i, (r, v, kw) in enumerate(kernels.direct_tiles(_TILE_TABLE[direction])):
                # kw: 1, 3 (a kernel row of three taps), or more (all the kernel's taps at once; native/grid_conv.cpp)
                if vecs % v == 0 and (kw == 1 or (rows_of_three if kw == 3 else kw == taps)):
                    found[f"direct:{r}x{v}x{kw}"] = (grid_direct, {"tile": i})
    return found


def planned(direction: str, geom: WindowGeometry, out_channels: int, shapes: tuple, operands: tuple,
             run: Callable[..., torch.Tensor]) -> torch.Tensor:
    """`run(path_module, **arguments)` with the implementation planned for this call (the built-in one unless the
    planner measures). `shapes` (without the batch size), the batch size's bucket (`planner.batch_bucket` of the
    first operand's batch) and the dtype key the plan."""
    native = grid_direct.usable(*operands)
    plan = planner.current()
    if plan.mode != "measure":
        return run(builtin_path(geom, native))
    found = _candidates(direction, geom, native, out_channels)
    batch = planner.batch_bucket(operands[0].shape[0])
    call_key = (direction, geom, shapes, batch, operands[0].dtype, native, torch.get_num_threads())
    choice = plan.remembered(call_key)
    if choice is None:
        # the candidate set is part of the key: with the kernels off (`kernels.disabled()`) fewer paths compete
        key = (f"{shapes} batch<={batch} stride={geom.stride} pads={geom.pads} dil={geom.dilation} "
               f"{operands[0].dtype} native={native}")
        choice = plan.choose(f"conv2d.{direction}", key,
                             {name: functools.partial(run, module, **kw) for name, (module, kw) in found.items()},
                             default=_PATH_NAMES[builtin_path(geom, native)]).choice
        plan.remember(call_key, choice)
    module, kw = found[choice]
    return run(module, **kw)


# --- cnnexp::conv2d --------------------------------------------------------------------------------------------


def _forward_cpu(x, weight, bias, stride, pads, dilation) -> torch.Tensor:
    geom = op_geometry(x.shape[2:], weight.shape[2:], stride, pads, dilation)
    return planned("forward", geom, weight.shape[0], (tuple(x.shape[1:]), tuple(weight.shape)), (x, weight, bias),
                    lambda path, **kw: path.forward(x, weight, bias, geom, **kw))


def _forward_portable(x, weight, bias, stride, pads, dilation) -> torch.Tensor:
    geom = op_geometry(x.shape[2:], weight.shape[2:], stride, pads, dilation)
    return builtin_path(geom, native=False).forward(x, weight, bias, geom)


conv2d_op = torch.library.custom_op(
    "cnnexp::conv2d", _forward_portable, mutates_args=(),
    schema="(Tensor x, Tensor weight, Tensor? bias, int[] stride, int[] pads, int[] dilation) -> Tensor",
)
"""`cnnexp::conv2d(x, weight, bias, stride, pads (top, bottom, left, right), dilation)` -> y channels_last."""
conv2d_op.register_kernel("cpu")(_forward_cpu)
conv2d_op.register_kernel("cuda")(_forward_portable)


@conv2d_op.register_fake
def _conv2d_fake(x, weight, bias, stride, pads, dilation):
    geom = op_geometry(x.shape[2:], weight.shape[2:], stride, pads, dilation)
    return empty_channels_last(x, (x.shape[0], weight.shape[0], *geom.out_hw))


# --- cnnexp::conv2d_input_grad -------------------------------------------------------------------------------

_INPUT_GRAD_SCHEMA = "(Tensor grad_out, Tensor weight, int[] x_hw, int[] stride, int[] pads, int[] dilation) -> Tensor"


def _input_grad_cpu(grad_out, weight, x_hw, stride, pads, dilation) -> torch.Tensor:
    geom = op_geometry(x_hw, weight.shape[2:], stride, pads, dilation)
    return planned("input_grad", geom, weight.shape[1], (tuple(grad_out.shape[1:]), tuple(weight.shape)),
                    (grad_out, weight), lambda path, **kw: path.input_grad(grad_out, weight, tuple(x_hw), geom, **kw))


def _input_grad_portable(grad_out, weight, x_hw, stride, pads, dilation) -> torch.Tensor:
    geom = op_geometry(x_hw, weight.shape[2:], stride, pads, dilation)
    return builtin_path(geom, native=False).input_grad(grad_out, weight, tuple(x_hw), geom)


input_grad_op = torch.library.custom_op(
    "cnnexp::conv2d_input_grad", _input_grad_portable, mutates_args=(), schema=_INPUT_GRAD_SCHEMA
)
"""dL/dx `(N, C_in, H, W)` (channels_last) from dL/dy and the weight."""
input_grad_op.register_kernel("cpu")(_input_grad_cpu)
input_grad_op.register_kernel("cuda")(_input_grad_portable)


@input_grad_op.register_fake
def _input_grad_fake(grad_out, weight, x_hw, stride, pads, dilation):
    return empty_channels_last(grad_out, (grad_out.shape[0], weight.shape[1], *x_hw))


# --- cnnexp::conv2d_weight_grad ------------------------------------------------------------------------------

_WEIGHT_GRAD_SCHEMA = "(Tensor grad_out, Tensor x, int[] kernel, int[] stride, int[] pads, int[] dilation) -> Tensor"


def _weight_grad_cpu(grad_out, x, kernel, stride, pads, dilation) -> torch.Tensor:
    geom = op_geometry(x.shape[2:], kernel, stride, pads, dilation)
    return planned("weight_grad", geom, grad_out.shape[1], (tuple(x.shape[1:]), tuple(grad_out.shape[1:])),
                    (grad_out, x), lambda path, **kw: path.weight_grad(x, grad_out, geom, **kw))


def _weight_grad_portable(grad_out, x, kernel, stride, pads, dilation) -> torch.Tensor:
    geom = op_geometry(x.shape[2:], kernel, stride, pads, dilation)
    return builtin_path(geom, native=False).weight_grad(x, grad_out, geom)


weight_grad_op = torch.library.custom_op(
    "cnnexp::conv2d_weight_grad", _weight_grad_portable, mutates_args=(), schema=_WEIGHT_GRAD_SCHEMA
)
"""dL/dW `(C_out, C_in, kH, kW)` (contiguous) from dL/dy and x."""
weight_grad_op.register_kernel("cpu")(_weight_grad_cpu)
weight_grad_op.register_kernel("cuda")(_weight_grad_portable)


@weight_grad_op.register_fake
def _weight_grad_fake(grad_out, x, kernel, stride, pads, dilation):
    return x.new_empty((grad_out.shape[1], x.shape[1], kernel[0], kernel[1]))


# --- the hand-written backward ---------------------------------------------------------------------------------


def _setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    x, weight, bias, stride, pads, dilation = inputs
    ctx.save_for_backward(x, weight)
    ctx.window = (list(stride), list(pads), list(dilation))
    ctx.has_bias = bias is not None


def _backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    x, weight = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    grad_x = input_grad_op(grad_out, weight, list(x.shape[2:]), *ctx.window) if need_x else None
    grad_w = weight_grad_op(grad_out, x, list(weight.shape[2:]), *ctx.window) if need_w else None
    grad_b = grad_out.sum(dim=(0, 2, 3)) if need_b and ctx.has_bias else None  # (C_out,)
    return grad_x, grad_w, grad_b, None, None, None


conv2d_op.register_autograd(_backward, setup_context=_setup_context)


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """2-D cross-correlation (a deep-learning "convolution") with a hand-written backward.

    Args:
        x: input images.
        weight: one `(C_in, kH, kW)` kernel per output channel.
        bias: one value per output channel, or None.
        stride: step of the window, int or `(sH, sW)`.
        padding: `"valid"`, `"same"` (TensorFlow/Keras rule at any stride and dilation, odd pixel at the
            bottom/right), an int, or `(pH, pW)`.
        dilation: spacing between kernel taps, int or `(dH, dW)`.
        groups: torch's grouped convolution (`groups = C_in`: depthwise); with `groups != 1` or an
            unbatched `(C_in, H, W)` input the call goes to `grouped_conv2d.conv2d_grouped`.

    Shape:
        x: `(N, C_in, H, W)`; weight: `(C_out, C_in, kH, kW)`; bias: `(C_out,)`.
        Output: `(N, C_out, H_out, W_out)`, `H_out = floor((H + top + bottom - ((kH-1)*dH + 1)) / sH) + 1`
        (`= ceil(H / sH)` for `"same"`), likewise W. The output is dense with channels-last strides.

    Raises:
        ValueError: bad kernel/stride/dilation/padding, channel mismatch, kernel larger than the padded
            input (`ShapeError`, a ValueError subclass, for the shape problems), operands of different
            devices or dtypes (outside autocast).

    Example:
        >>> y = conv2d(torch.randn(2, 3, 8, 8), torch.randn(16, 3, 3, 3), padding="same")
        >>> tuple(y.shape)
        (2, 16, 8, 8)
    """
    if groups != 1 or x.dim() == 3:  # torch's grouped / unbatched forms (grouped_conv2d.py)
        return conv2d_grouped(x, weight, bias, stride, padding, dilation, groups)
    geom = conv_geometry(x, weight, bias, stride, padding, dilation, op="conv2d")
    (x, weight, bias), autocast_off = autocast_operands(x, weight, bias)  # mixed precision: one dtype throughout
    check_same_dtype("conv2d", x, weight=weight, bias=bias)
    with autocast_off:
        return conv2d_op(x, weight, bias, list(geom.stride), list(geom.pads), list(geom.dilation))
