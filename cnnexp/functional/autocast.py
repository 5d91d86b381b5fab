"""Mixed precision for the custom ops: behave under `torch.autocast` as autocast treats `F.conv2d`.

Autocast casts the operands of a convolution to its lower-precision dtype (float16 / bfloat16) and runs the op
in that dtype. A custom autograd Function gets no such treatment: only the matrix products inside it would be
cast, so its backward (which runs outside autocast) would mix float16 gradients with float32 weights. So the
functional wrapper casts the operands once, up front, and runs the Function with autocast off: forward and
backward then see one dtype, and autograd casts the gradients back to the parameters' float32.
"""

from __future__ import annotations

import contextlib

import torch


def autocast_operands(
    *tensors: torch.Tensor | None,
) -> tuple[tuple[torch.Tensor | None, ...], contextlib.AbstractContextManager]:
    """`(tensors cast to the autocast dtype, a context that turns autocast off)`; unchanged outside autocast.

    The device of the first tensor decides which autocast applies (cpu or cuda). Floating tensors only are cast.
    """
    device_type = tensors[0].device.type
    if not torch.is_autocast_enabled(device_type):
        return tensors, contextlib.nullcontext()
    dtype = torch.get_autocast_dtype(device_type)
    cast = tuple(t.to(dtype) if t is not None and t.is_floating_point() else t for t in tensors)
    return cast, torch.autocast(device_type, enabled=False)
