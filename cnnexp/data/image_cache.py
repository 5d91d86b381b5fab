"""Decode a list of image files once into one uint8 tensor, optionally saved to a cache file beside the data."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence

import torch

from cnnexp.data.image_decode import COLOR_MODES, BadImage, load_image
from cnnexp.data.messages import DataWarning

CACHE_VERSION = 1


class DecodedImages:
    """The decoded files: `images (N, C, H, W)` uint8 in the order of `paths`, `ok (N,)` bool, `bad` paths.

    Rows of undecodable files are zeros with `ok` False.
    """

    def __init__(self, images: torch.Tensor, ok: torch.Tensor, bad: list[str]) -> None:
        self.images, self.ok, self.bad = images, ok, bad


def cache_key(paths: Sequence[str], size: tuple[int, int], color_mode: str) -> str:
    """A hash of the file list, each file's size and mtime, the image size and the colour mode."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, list(size), color_mode]).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def decode_images(paths: Sequence[str], size: tuple[int, int], color_mode: str = "rgb",
                  threads: int | None = None) -> DecodedImages:
    """Decode and resize every file once (Pillow releases the GIL, so threads decode in parallel).

    Shape:
        - images: `(N, C, size[0], size[1])` uint8 with C from color_mode.
    """
    channels = COLOR_MODES[color_mode]
    images = torch.zeros((len(paths), channels, *size), dtype=torch.uint8)  # (N, C, H, W)
    ok = torch.zeros(len(paths), dtype=torch.bool)
    bad: list[str] = []
    rows = images.numpy()  # a view: numpy copies do not contend for torch's intra-op threads

    def work(i: int) -> str | None:
        try:
            rows[i] = load_image(paths[i], size, color_mode).numpy()
            ok[i] = True
            return None
        except BadImage:
            return paths[i]

    workers = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        bad = [p for p in pool.map(work, range(len(paths))) if p is not None]
    return DecodedImages(images, ok, bad)


def load_cache(file: str, key: str) -> DecodedImages | None:
    """The cached images when `file` exists and was written for `key`, else None (never executes code)."""
    if not os.path.exists(file):
        return None
    try:
        blob = torch.load(file, map_location="cpu", weights_only=True)
        if blob.get("key") != key:
            return None
        return DecodedImages(blob["images"], blob["ok"], list(blob["bad"]))
    except Exception as error:  # a damaged cache is rebuilt, never fatal
        warnings.warn(f"ignoring unreadable image cache {file}: {error}", DataWarning, stacklevel=2)
        return None


def save_cache(file: str, key: str, decoded: DecodedImages) -> None:
    """Write the cache atomically (`cnnexp.atomic_write`); warn and go on if the folder is read-only or full."""
    from cnnexp.atomic_write import atomic_torch_save

    try:
        atomic_torch_save({"key": key, "images": decoded.images, "ok": decoded.ok, "bad": decoded.bad}, file)
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError
        warnings.warn(f"could not write the image cache {file} ({error}); images stay cached in memory only",
                      DataWarning, stacklevel=2)


def cached_decode(paths: Sequence[str], size: tuple[int, int], color_mode: str, cache_file: str | None,
                  threads: int | None = None) -> DecodedImages:
    """`decode_images`, reusing / refreshing `cache_file` when one is given."""
    if cache_file is None:
        return decode_images(paths, size, color_mode, threads)
    key = cache_key(paths, size, color_mode)
    decoded = load_cache(cache_file, key)
    if decoded is None:
        decoded = decode_images(paths, size, color_mode, threads)
        save_cache(cache_file, key, decoded)
    return decoded
