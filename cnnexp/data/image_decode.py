"""Decode one image file to a uint8 tensor of the configured channels and size, as Keras does.

Keras decodes with `tf.io.decode_image(channels=C, expand_animations=False)` (first frame; alpha dropped,
gray replicated; 16-bit PNGs converted to 8 bits) and resizes with `tf.image.resize(method="bilinear")`
(half-pixel centres, no antialiasing, aspect ratio not kept, no crop). Here Pillow decodes and
a half-pixel bilinear resize without antialiasing (`resize_uint8`) shrinks or grows it; the result is
rounded to uint8 for the cache (at most 0.5 grey level from Keras's float output).
"""

from __future__ import annotations

import numpy as np
import torch

COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
_PIL_MODE = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}


class BadImage(Exception):
    """The file cannot be decoded (zero bytes, truncated, not an image)."""


def _to_8bit(image):
    """Pillow opens 16-bit PNGs as mode I;16 / I (values 0..65535): keep the high byte, as TF does."""
    from PIL import Image

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        array = np.asarray(image, dtype=np.int64)
        return Image.fromarray((np.clip(array, 0, 65535) >> 8).astype(np.uint8))
    if image.mode == "F":
        return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    return image


def read_image(path: str, color_mode: str = "rgb") -> torch.Tensor:
    """Decode `path` into a uint8 `(C, H, W)` tensor with C from `color_mode` (grayscale 1, rgb 3, rgba 4).

    Raises:
        BadImage: the file is empty, truncated or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.seek(0)  # first frame of an animation, as expand_animations=False
            image.load()  # decodes now: a truncated file raises OSError here
            image = _to_8bit(image)
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")  # palette transparency: avoid Pillow's warning
            image = image.convert(_PIL_MODE[color_mode])
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadImage(f"{path}: {error}") from None
    if array.ndim == 2:
        array = array[:, :, None]  # (H, W, 1)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()  # (C, H, W)


def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows (or columns) and weights of a half-pixel bilinear resize along one axis.

    `src = (dst + 0.5) * in / out - 0.5`, clamped to the image (tf.image.resize / torch align_corners=False).
    """
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0, in_size - 1)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, (src - low).astype(np.float32)


def resize_uint8(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (Keras / tf.image.resize semantics: half-pixel centres, no antialias) of a uint8 image.

    Computed with numpy, one axis after the other, so that decoding threads do not contend for torch's
    intra-op thread pool; equal to `F.interpolate(mode="bilinear", align_corners=False, antialias=False)`
    up to float rounding (at most one grey level).

    Shape:
        - image: `(C, H, W)` uint8 -> `(C, size[0], size[1])` uint8.
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    array = image.numpy().astype(np.float32)  # (C, H, W)
    y0, y1, wy = _taps(array.shape[1], size[0])
    x0, x1, wx = _taps(array.shape[2], size[1])
    rows = array[:, y0, :] * (1 - wy)[:, None] + array[:, y1, :] * wy[:, None]  # (C, h, W)
    out = rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx  # (C, h, w)
    return torch.from_numpy(np.rint(out).clip(0, 255).astype(np.uint8))


def load_image(path: str, size: tuple[int, int], color_mode: str = "rgb") -> torch.Tensor:
    """`read_image` then `resize_uint8`: the cached form of one file, uint8 `(C, size[0], size[1])`."""
    return resize_uint8(read_image(path, color_mode), size)
