"""The one table of conv cases shared by the forward, gradient, shape and GPU checks.

Together the rows cover: batch 1 and 4; C_in 1, 3, 5; kernels 1x1, 3x3, 2x4, 5x5; strides 1..3
(also non-square); padding valid, same, int and pair; dilation 1 and 2; with and without bias.
Sizes stay small so that float64 gradcheck runs in about a second per case.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ConvCase:
    n: int
    c_in: int
    c_out: int
    hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: int | tuple[int, int]
    padding: str | int | tuple[int, int]
    dilation: int | tuple[int, int]
    bias: bool

    def tensors(self, dtype: torch.dtype = torch.float64, device: str = "cpu", seed: int = 0):
        """x `(N, C_in, H, W)`, weight `(C_out, C_in, kH, kW)`, bias `(C_out,)` or None."""
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(self.n, self.c_in, *self.hw, generator=gen, dtype=dtype)
        w = torch.randn(self.c_out, self.c_in, *self.kernel, generator=gen, dtype=dtype)
        b = torch.randn(self.c_out, generator=gen, dtype=dtype) if self.bias else None
        return tuple(t.to(device) if t is not None else None for t in (x, w, b))

    def kwargs(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}

    def __str__(self) -> str:
        return (f"n{self.n}-c{self.c_in}x{self.c_out}-{self.hw[0]}x{self.hw[1]}-k{self.kernel[0]}x{self.kernel[1]}"
                f"-s{self.stride}-p{self.padding}-d{self.dilation}-{'b' if self.bias else 'nob'}")


CONV_CASES = [
    ConvCase(1, 1, 1, (5, 5), (1, 1), 1, "valid", 1, False),
    ConvCase(4, 3, 2, (7, 6), (3, 3), 1, "same", 1, True),
    ConvCase(1, 5, 3, (8, 9), (2, 4), 2, "same", 1, True),
    ConvCase(4, 3, 4, (9, 9), (5, 5), 1, "same", 1, False),
    ConvCase(1, 3, 2, (9, 8), (3, 3), 3, "valid", 1, True),
    ConvCase(4, 1, 3, (7, 7), (3, 3), 2, 1, 2, True),
    ConvCase(1, 5, 2, (10, 9), (2, 4), 1, (1, 2), 2, False),
    ConvCase(4, 3, 2, (8, 7), (5, 5), 3, "same", 2, True),
    ConvCase(1, 3, 3, (6, 6), (1, 1), 2, "same", 1, True),
    ConvCase(4, 5, 2, (9, 10), (3, 3), (1, 2), 2, 1, False),
    ConvCase(1, 1, 1, (5, 5), (3, 3), 1, "same", 1, True),
    ConvCase(4, 3, 2, (7, 9), (2, 4), 3, "valid", 1, True),
    ConvCase(1, 3, 4, (11, 11), (3, 3), 2, "same", 2, False),
    ConvCase(4, 5, 2, (6, 7), (5, 5), 2, 2, 1, True),
    ConvCase(1, 3, 2, (12, 10), (3, 3), 1, "valid", 2, True),
    ConvCase(4, 1, 2, (5, 6), (1, 1), 3, (0, 1), 1, False),
    ConvCase(1, 3, 2, (4, 4), (5, 5), 2, "same", 1, True),  # kernel larger than the input: 'same' pads
    ConvCase(1, 3, 2, (9, 8), (3, 3), (3, 1), "same", (2, 1), True),
    # stride 1 with C_in > 4 runs on the shared-padding grid (grid_gemm.grid_dims): 'same', and padding wider
    # than the kernel's reach (the zero border is then W_out - W columns, not max(left, right))
    ConvCase(4, 5, 3, (7, 6), (3, 3), 1, "same", 1, True),
    ConvCase(2, 5, 2, (5, 6), (1, 1), 1, (2, 3), 1, False),
]
