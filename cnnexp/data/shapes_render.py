"""Draw oriented lines and outlined shapes as anti-aliased strokes, a whole batch at once.

Every shape is a set of line segments (a circle is a ring); a pixel's brightness is
`clamp(thickness / 2 + 0.5 - distance_to_nearest_stroke, 0, 1)`.
"""

from __future__ import annotations

import math

import torch

# Each shape as segments in a unit frame centred at the origin, half-size 1 (x right, y down).
_D = 1 / math.sqrt(2)
SEGMENTS: dict[str, list[tuple[float, float, float, float]]] = {
    "horizontal": [(-1, 0, 1, 0)],
    "vertical": [(0, -1, 0, 1)],
    "diagonal_up": [(-_D, _D, _D, -_D)],  # "/"
    "diagonal_down": [(-_D, -_D, _D, _D)],  # "\"
    "square": [(-0.8, -0.8, 0.8, -0.8), (0.8, -0.8, 0.8, 0.8), (0.8, 0.8, -0.8, 0.8), (-0.8, 0.8, -0.8, -0.8)],
    "cross": [(-1, 0, 1, 0), (0, -1, 0, 1)],  # "+"
    "triangle": [(0, -1, 0.95, 0.75), (0.95, 0.75, -0.95, 0.75), (-0.95, 0.75, 0, -1)],
    "circle": [],  # a ring of radius 0.85
}
SHAPE_NAMES = tuple(SEGMENTS)
RING_RADIUS = 0.85


def _segment_distance(px: torch.Tensor, py: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """Distance from every pixel to one segment per sample.

    Shape:
        - px, py: `(1, H, W)` pixel centres; seg: `(n, 4)` endpoints (x0, y0, x1, y1) -> `(n, H, W)`.
    """
    x0, y0, x1, y1 = (seg[:, i, None, None] for i in range(4))  # (n, 1, 1) each
    dx, dy = x1 - x0, y1 - y0
    t = (((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy).clamp_min(1e-9)).clamp(0, 1)  # (n, H, W)
    return torch.hypot(px - (x0 + t * dx), py - (y0 + t * dy))


def draw(shape: str, centre: torch.Tensor, half_size: torch.Tensor, thickness: torch.Tensor,
         size: int) -> torch.Tensor:
    """Draw `n` copies of `shape` with per-sample centre, half-size and stroke thickness (pixels).

    Args:
        shape: one of SHAPE_NAMES.
        centre: `(n, 2)` (x, y) in pixels.
        half_size: `(n,)` half the extent in pixels.
        thickness: `(n,)` stroke width in pixels.
        size: image height = width.

    Returns:
        `(n, size, size)` brightness in 0..1.
    """
    coords = torch.arange(size, dtype=torch.float32) + 0.5  # pixel centres
    py, px = coords.view(1, size, 1), coords.view(1, 1, size)  # (1, H, 1), (1, 1, W)
    cx, cy, s = centre[:, 0], centre[:, 1], half_size
    if shape == "circle":
        radius = torch.hypot(px - cx[:, None, None], py - cy[:, None, None])  # (n, H, W)
        distance = (radius - RING_RADIUS * s[:, None, None]).abs()
    else:
        distance = torch.full((len(s), size, size), float("inf"))
        for x0, y0, x1, y1 in SEGMENTS[shape]:
            seg = torch.stack([cx + x0 * s, cy + y0 * s, cx + x1 * s, cy + y1 * s], dim=1)  # (n, 4)
            distance = torch.minimum(distance, _segment_distance(px, py, seg))
    return (thickness[:, None, None] / 2 + 0.5 - distance).clamp(0, 1)  # (n, H, W)
