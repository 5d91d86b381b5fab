"""Augmentation of whole training batches: one random affine warp per image, drawn and applied in one call.

Per-image torchvision transforms run in Python once per image (about 0.2 ms each on a CPU core: a quarter
of a second per epoch of the 1,257 training digits); `F.affine_grid` + `F.grid_sample` warp a whole batch in
one call, on the batch's device, after the batch reached it (`LightningDataModule.on_after_batch_transfer`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class BatchRandomAffine:
    """Rotate, zoom and shift every image of a batch by its own random amounts (uniform, drawn independently).

    Keras's `RandomRotation(rotation) + RandomZoom(zoom) + RandomTranslation(translation)` as one warp with
    bilinear interpolation; pixels from outside the image are filled with zeros (the digits' background) or
    by reflection. Draws from torch's global generator on the batch's device, so `seed=` fixes it.

    Args:
        degrees: largest rotation, in degrees (angle uniform in +-degrees).
        zoom: scale uniform in [1 - zoom, 1 + zoom] (both axes together; > 1 magnifies).
        translation: shift uniform in +-translation of the height and of the width (independently).
        padding_mode: "zeros" or "reflection" (`F.grid_sample`'s names).

    Shape:
        - Input: `(N, C, H, W)` float.
        - Output: `(N, C, H, W)`, same dtype and device.

    Example:
        >>> x = torch.rand(4, 1, 32, 32)
        >>> BatchRandomAffine(degrees=10, zoom=0.1, translation=0.1)(x).shape
        torch.Size([4, 1, 32, 32])
    """

    def __init__(self, degrees: float = 10.0, zoom: float = 0.1, translation: float = 0.1,
                 padding_mode: str = "zeros") -> None:
        from cnnexp.errors import ConfigError

        if not 0 <= degrees <= 180 or not 0 <= zoom < 1 or not 0 <= translation < 0.5:
            raise ConfigError(f"batch augmentation degrees={degrees!r}, zoom={zoom!r}, translation={translation!r} "
                              "out of range. Fix: use 0 <= degrees <= 180, 0 <= zoom < 1, 0 <= translation < 0.5.")
        if padding_mode not in ("zeros", "reflection"):
            raise ConfigError(f"batch augmentation padding_mode={padding_mode!r} is invalid. "
                              "Fix: use zeros or reflection.")
        self.degrees, self.zoom, self.translation, self.padding_mode = degrees, zoom, translation, padding_mode

    def theta(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Random affine matrices `(n, 2, 3)` in `F.affine_grid`'s normalised coordinates (output -> input)."""
        u = torch.rand(4, n, device=device) * 2 - 1  # (4, n) uniform in [-1, 1)
        angle = u[0] * math.radians(self.degrees)
        scale = 1 + u[1] * self.zoom
        cos, sin = angle.cos() / scale, angle.sin() / scale  # sampling the input at 1/scale magnifies by scale
        shift = u[2:] * (2 * self.translation)  # (2, n): coordinates span [-1, 1], i.e. 2 per image side
        return torch.stack([torch.stack([cos, -sin, shift[0]], 1), torch.stack([sin, cos, shift[1]], 1)], 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(x.shape[0], x.device).to(x.dtype)  # (N, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)

    def __repr__(self) -> str:
        return (f"BatchRandomAffine(degrees={self.degrees}, zoom={self.zoom}, translation={self.translation}, "
                f"padding_mode={self.padding_mode!r})")
