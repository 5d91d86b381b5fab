"""Images per second of an epoch over an image folder: decoded-once cache vs decoding every epoch.

Generates JPEGs of 240x320 in a temp dir (a few classes), then, side by side in one run:
  - uncached: torchvision's ImageFolder (Pillow decode every epoch) + the same bilinear resize and float cast;
  - cached:   cnnexp's ImageFolderDataModule (decode once in setup(), then epochs index a uint8 tensor).
Both paths use the same resize (cnnexp.data.image_decode.resize_uint8) and the same batch collation (uint8
stacked, cast to float32 once per batch). Prints a table and the ratio, and writes JSON (--out).

    python scripts/bench_data.py            # ~2,000 images, 3 epochs each
    python scripts/bench_data.py --quick    # a smoke run with 200 images
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from cnnexp.provenance import cpu_model


def generate_jpegs(root: Path, n: int, classes: int, height: int, width: int, seed: int = 0) -> None:
    """`n` photo-like JPEGs (smooth colour fields, shapes and noise), spread over `classes` folders."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(n):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.uniform(0, 2 * np.pi, 3)
        base = np.stack([np.sin(xx / (30 + 20 * k) + a * k) * np.cos(yy / 40 + b) for k in range(1, 4)], -1)
        pixels = (127 + 100 * base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        blob_w, blob_h = width // 5, height // 5
        x0, y0 = int(rng.integers(0, width - blob_w)), int(rng.integers(0, height - blob_h))
        draw.ellipse((x0, y0, x0 + blob_w, y0 + blob_h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        image.save(folder / f"img_{i:05d}.jpg", quality=90)


class DecodeResize:
    """The uncached path's transform: PIL image -> uint8 (C, H, W) -> the same resize as the cache."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def __call__(self, image) -> torch.Tensor:
        from torchvision.transforms.v2.functional import pil_to_tensor

        from cnnexp.data.image_decode import resize_uint8

        return resize_uint8(pil_to_tensor(image), self.size)


def run_epochs(loader, epochs: int) -> list[dict]:
    """Iterate `loader` for `epochs` epochs; images, seconds and images/s of each."""
    rows = []
    for epoch in range(epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        start, count = time.perf_counter(), 0
        for x, _ in loader:
            count += x.shape[0]
        seconds = time.perf_counter() - start
        rows.append({"epoch": epoch + 1, "images": count, "seconds": seconds, "images_per_s": count / seconds})
    return rows


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--source-size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    parser.add_argument("--image-size", type=int, nargs=2, default=[180, 180], metavar=("H", "W"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of both paths")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 images, 2 epochs")
    parser.add_argument("--out", default="bench-results/bench_data.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.epochs = min(args.images, 200), 2
    size = tuple(args.image_size)

    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    from cnnexp.data.image_folder import ImageFolderDataModule
    from cnnexp.data.tensor_dataset import collate_images

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(tmp) / "photos"
        start = time.perf_counter()
        generate_jpegs(root, args.images, args.classes, *args.source_size)
        generate_s = time.perf_counter() - start
        jpeg_bytes = sum(p.stat().st_size for p in root.rglob("*.jpg"))

        uncached_set = ImageFolder(str(root), transform=DecodeResize(size))
        uncached = run_epochs(DataLoader(uncached_set, batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.num_workers, collate_fn=collate_images), args.epochs)

        dm = ImageFolderDataModule(str(root), image_size=size, batch_size=args.batch_size,
                                   validation_split=0.2, seed=123, num_workers=args.num_workers)
        start = time.perf_counter()
        dm.setup()  # the one decode of every file (train + validation)
        decode_s = time.perf_counter() - start
        cached = run_epochs(dm.train_dataloader(), args.epochs)

    unc = float(np.mean([r["images_per_s"] for r in uncached]))
    cac = float(np.mean([r["images_per_s"] for r in cached]))
    decode_rate = args.images / decode_s
    result = {
        "params": {k: v for k, v in vars(args).items() if k != "out"}, "machine": machine(),
        "generate_seconds": generate_s, "jpeg_megabytes": jpeg_bytes / 1e6,
        "uncached": uncached, "cached_decode_once": {"images": args.images, "seconds": decode_s,
                                                     "images_per_s": decode_rate},
        "cached": cached, "uncached_images_per_s": unc, "cached_images_per_s": cac, "speedup": cac / unc,
    }
    print(f"{args.images} JPEGs {args.source_size[0]}x{args.source_size[1]} -> {size[0]}x{size[1]}, "
          f"batch {args.batch_size}, {args.num_workers} workers, {machine()['cores']} cores")
    print(f"{'path':<28}{'epoch':>6}{'images':>8}{'seconds':>9}{'images/s':>11}")
    for name, rows in (("uncached (decode each epoch)", uncached), ("cached (uint8 in memory)", cached)):
        for r in rows:
            print(f"{name:<28}{r['epoch']:>6}{r['images']:>8}{r['seconds']:>9.2f}{r['images_per_s']:>11.0f}")
    print(f"{'cached: one-time decode':<28}{'-':>6}{args.images:>8}{decode_s:>9.2f}{decode_rate:>11.0f}")
    print(f"speedup of an epoch, cached / uncached: {cac / unc:.1f}x (target >= 5x)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
