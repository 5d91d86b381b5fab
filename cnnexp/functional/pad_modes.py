"""nn.Conv2d's padding modes ("reflect", "replicate", "circular") as an index gather with a hand-written backward.

Along one axis of length `L`, padded position `i` (from `-before` to `L + after - 1`) reads source index

    reflect:    i < 0 -> -i,       i >= L -> 2 (L - 1) - i      (mirror, edge not repeated; pads < L)
    replicate:  clamp(i, 0, L - 1)                                (edge repeated)
    circular:   i mod L                                           (wrap around; pads <= L)

Forward gathers rows then columns (`index_select`); backward adds the gradient back with `index_add_`,
the adjoint of the gather, so the border's gradient lands on the pixels it copied.
"""

from __future__ import annotations

from typing import Any

import torch

from .pooling import pad_plane

PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def source_index(length: int, before: int, after: int, mode: str, device: torch.device | None = None) -> torch.Tensor:
    """Source index of every padded position along one axis, `(before + length + after,)` int64.

    Example:
        >>> source_index(3, 2, 1, "reflect").tolist()
        [2, 1, 0, 1, 2, 1]
    """
    i = torch.arange(-before, length + after, device=device)
    if mode == "reflect":
        if before >= length or after >= length:
            raise ValueError(f"reflect padding ({before}, {after}) must be smaller than the input length {length}")
        return torch.where(i < 0, -i, torch.where(i >= length, 2 * (length - 1) - i, i))
    if mode == "replicate":
        return i.clamp(0, length - 1)
    if mode == "circular":
        if before > length or after > length:
            raise ValueError(f"circular padding ({before}, {after}) must be at most the input length {length}")
        return i.remainder(length)
    raise ValueError(f"padding_mode must be one of {list(PAD_MODES[1:])}, got {mode!r}")


class PadGatherFunction(torch.autograd.Function):
    """xp = x[..., rows, :][..., :, cols] with the index_add_ adjoint as backward."""

    @staticmethod
    def forward(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return x.index_select(-2, rows).index_select(-1, cols)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, rows, cols = inputs
        ctx.save_for_backward(rows, cols)
        ctx.x_shape = x.shape

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        rows, cols = ctx.saved_tensors
        *lead, h, w = ctx.x_shape
        g_cols = grad_out.new_zeros((*lead, grad_out.shape[-2], w)).index_add_(-1, cols, grad_out)
        return grad_out.new_zeros(ctx.x_shape).index_add_(-2, rows, g_cols), None, None


def pad2d(x: torch.Tensor, pads: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Pad the last two axes by `(top, bottom, left, right)` with `mode` ("zeros" too).

    Shape:
        x: `(..., H, W)` -> `(..., H + top + bottom, W + left + right)`.
    """
    t, b, l, r = pads
    if t == b == l == r == 0:
        return x
    if mode == "zeros":
        return pad_plane(x, pads, 0.0)
    h, w = x.shape[-2:]
    rows = source_index(int(h), t, b, mode, x.device)
    cols = source_index(int(w), l, r, mode, x.device)
    return PadGatherFunction.apply(x, rows, cols)
