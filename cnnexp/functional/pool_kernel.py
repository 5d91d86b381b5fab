"""The max-pool kernel (`native/max_pool.cpp`): forward and backward on dense channels-last tensors (CPU,
float32; `native_kernels` builds and loads it). Same rules as `max_pool2d`: -inf padding, NaN wins, the
gradient goes to the first arg-max in row-major window order."""

from __future__ import annotations

import torch

from . import native_kernels
from .geometry import WindowGeometry
from .im2col import empty_channels_last, nhwc_view


def usable(x: torch.Tensor) -> bool:
    """CPU float32 in channels_last memory format (as the custom conv's outputs are), kernels built."""
    return x.is_contiguous(memory_format=torch.channels_last) and native_kernels.usable(x)


def _geometry_args(x_shape: torch.Size, g: WindowGeometry) -> list[int]:
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ho, wo), (top, _, left, _) = g.kernel, g.stride, g.out_hw, g.pads
    return [n, h, w, c, ho, wo, kh, kw, sh, sw, top, left]


def forward(x: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """Shape: x `(N, C, H, W)` channels_last -> `(N, C, H_out, W_out)` channels_last."""
    xh = nhwc_view(x)  # (N, H, W, C), contiguous
    y = empty_channels_last(x, (*x.shape[:2], *g.out_hw))
    native_kernels.library().cnnexp_max_pool(xh.data_ptr(), nhwc_view(y).data_ptr(), *_geometry_args(x.shape, g),
                                             torch.get_num_threads())
    return y


def backward(x: torch.Tensor, y: torch.Tensor, grad_out: torch.Tensor, g: WindowGeometry) -> torch.Tensor:
    """Shape: x `(N, C, H, W)` and y, grad_out `(N, C, H_out, W_out)` -> `(N, C, H, W)` channels_last."""
    xh, yh = nhwc_view(x), nhwc_view(y)
    gy = nhwc_view(grad_out).contiguous()  # (N, H_out, W_out, C); no copy when already channels_last
    assert xh.is_contiguous() and yh.is_contiguous()
    gx = empty_channels_last(x, x.shape)
    native_kernels.library().cnnexp_max_pool_backward(
        xh.data_ptr(), yh.data_ptr(), gy.data_ptr(), nhwc_view(gx).data_ptr(), *_geometry_args(x.shape, g),
        torch.get_num_threads(),
    )
    return gx
