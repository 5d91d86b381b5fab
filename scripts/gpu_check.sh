#!/usr/bin/env bash
# GPU check: fit the lecture's seed model (experiment seed_flowers: 180x180 RGB, batch 32, 5 classes) with
# trainer=gpu, once with the custom convolution and once with torch's, and print the training images/s of each.
#
#   scripts/gpu_check.sh                       # uses $CNNEXP_DATA_DIR/flower_photos, else generated JPEGs
#   EPOCHS=2 PRECISION=bf16-mixed scripts/gpu_check.sh
#   TRAINER=cpu IMAGES=64 scripts/gpu_check.sh  # a smoke run of this script without a GPU
#
# Writes bench-results/gpu_check.json; then (not with TRAINER=cpu) runs the CUDA-marked tests and
# scripts/bench_conv.py --device cuda (bench-results/bench_conv_cuda.json): one command for a GPU machine.
# The first epoch includes CUDA/cuDNN warm-up; the table shows the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"

export GPU_CHECK_DATA="${CNNEXP_DATA_DIR:-data}"
if [ ! -d "$GPU_CHECK_DATA/flower_photos" ]; then
  GPU_CHECK_DATA="$(mktemp -d)"
  trap 'rm -rf "$GPU_CHECK_DATA"' EXIT
  echo "no flower_photos under ${CNNEXP_DATA_DIR:-data}: generating ${IMAGES:-1000} JPEGs (240x320) in $GPU_CHECK_DATA"
fi

"$PYTHON" - "$@" <<'PY'
import json, os, sys, time
from pathlib import Path

import numpy as np

data_dir = Path(os.environ["GPU_CHECK_DATA"])
if not (data_dir / "flower_photos").is_dir():
    from PIL import Image
    rng = np.random.default_rng(0)
    n = int(os.environ.get("IMAGES", 1000))
    classes = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    for i in range(n):
        folder = data_dir / "flower_photos" / classes[i % 5]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) // (1 + i % 5)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)

import lightning as L
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

import cnnexp.conf  # noqa: F401
from cnnexp.train import fill_data_shape, quiet_library_output


class EpochTimer(L.Callback):
    """Wall time of each training epoch (CUDA synchronised), for images/s."""

    def __init__(self):
        self.seconds, self.images = [], 0

    def on_train_epoch_start(self, trainer, pl_module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start, self.images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.images += batch[0].shape[0]

    def on_train_epoch_end(self, trainer, pl_module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self.start)


quiet_library_output()
trainer_name = os.environ.get("TRAINER", "gpu")
epochs = int(os.environ.get("EPOCHS", 1))
rows = []
for impl in ["custom", "torch"]:
    overrides = ["+experiment=seed_flowers", f"trainer={trainer_name}", f"model.conv_impl={impl}",
                 f"paths.data_dir={data_dir}", "torch_threads=null"]
    if os.environ.get("PRECISION"):
        overrides.append(f"trainer.precision={os.environ['PRECISION']}")
    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides + sys.argv[1:])
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate(cfg.data)
    fill_data_shape(cfg, datamodule)
    model = instantiate(cfg.model)
    timer = EpochTimer()
    trainer = instantiate(cfg.trainer, max_epochs=epochs, callbacks=[timer], logger=False, plugins=None,
                          enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0,
                          default_root_dir=str(data_dir))
    row = {"conv_impl": impl, "trainer": trainer_name, "precision": str(cfg.trainer.precision),
           "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    try:
        trainer.fit(model, datamodule=datamodule)
        row.update(images=timer.images, seconds=round(timer.seconds[-1], 3),
                   images_per_s=round(timer.images / timer.seconds[-1], 1),
                   first_epoch_s=round(timer.seconds[0], 3))
    except Exception as error:  # report and go on to the other implementation
        row["error"] = f"{type(error).__name__}: {error}"[:500]
    rows.append(row)

print(f"\n{'conv_impl':<9} {'device':<28} {'precision':<10} {'images/s':>9}  note")
for r in rows:
    note = r.get("error", f"last epoch {r.get('seconds')} s, first {r.get('first_epoch_s')} s")
    print(f"{r['conv_impl']:<9} {r['device'][:28]:<28} {r['precision']:<10} {r.get('images_per_s', float('nan')):>9}  {note}")
if all("images_per_s" in r for r in rows):
    print(f"custom / torch = {rows[0]['images_per_s'] / rows[1]['images_per_s']:.2f}")
Path("bench-results").mkdir(exist_ok=True)
Path("bench-results/gpu_check.json").write_text(json.dumps(rows, indent=2))
print("wrote bench-results/gpu_check.json")
sys.exit(1 if any("error" in r for r in rows) else 0)
PY

# The CUDA-marked tests and the conv benchmark on the same device, in the same command (skipped on TRAINER=cpu).
if [ "${TRAINER:-gpu}" != "cpu" ]; then
  "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider
  "$PYTHON" scripts/bench_conv.py --device cuda --out bench-results/bench_conv_cuda.json
fi
