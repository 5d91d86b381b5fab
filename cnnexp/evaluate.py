"""`python -m cnnexp.evaluate ckpt_path=PATH [predict=[a.png,b.jpg]] [key=value ...]`: test or use a checkpoint.

The run's own saved config (`config_resolved.yaml` in the run folder that holds `checkpoints/`) rebuilds the data
and the network; the weights load with `torch.load(weights_only=True)` (nothing in the file can run code).

- test mode (the default): tests the checkpoint on the data's test split and prints `test/acc=...`, the value the
  end of training printed for its best checkpoint.
- predict mode (`predict=[files]`, or `mode=predict files=[...]`): decodes each image as the data module does
  (channels, resize to the model's input size) and prints `path: class (probability)`. `ckpt_path` may also be a
  `.pt2` or `.onnx` file that `python -m cnnexp.export` wrote into the run folder: that file computes the logits.

Other `key=value` arguments override the saved config, e.g. `paths.data_dir=/elsewhere` or
`trainer.accelerator=cpu` to evaluate a GPU run on a laptop.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from cnnexp.cli import run_cli
from cnnexp.errors import ConfigError, DataError
from cnnexp.run_folders import RESOLVED_CONFIG, run_dir_of

CLI_KEYS = ("ckpt_path", "mode", "predict", "files")
COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}
USAGE = "usage: python -m cnnexp.evaluate ckpt_path=PATH [predict=[img1.png,img2.jpg]] [config.key=value ...]"


def parse_args(argv: Sequence[str]) -> tuple[DictConfig, DictConfig]:
    """Split `key=value` arguments into the CLI's own keys and the overrides of the saved config."""
    bad = [arg for arg in argv if "=" not in arg]
    if bad or not argv:
        raise ConfigError(f"expected key=value arguments, got {' '.join(bad) or 'nothing'}.\n{USAGE}")
    args = OmegaConf.from_dotlist(list(argv))
    cli = OmegaConf.create({key: args.pop(key) for key in CLI_KEYS if key in args})
    if not cli.get("ckpt_path"):
        raise ConfigError(f"ckpt_path is required.\n{USAGE}")
    return cli, args


def read_run_config(ckpt_path: str | Path, overrides: DictConfig | None = None) -> tuple[DictConfig, Path]:
    """The config a checkpoint was trained with, from its run folder, with `overrides` merged on top, and the file
    it came from. Nothing in it is checked or instantiated: see `load_run_config`."""
    run_dir = run_dir_of(ckpt_path)
    for name in (RESOLVED_CONFIG, ".hydra/config.yaml"):
        if (run_dir / name).is_file():
            source = run_dir / name
            break
    else:
        raise ConfigError(f"no saved config for {ckpt_path}: expected {run_dir / RESOLVED_CONFIG} "
                          "(the checkpoint must stay inside its run folder, <run>/checkpoints/).")
    cfg = OmegaConf.merge(OmegaConf.load(source), overrides or {})
    OmegaConf.set_struct(cfg, False)
    return cfg, source  # type: ignore[return-value]


def load_run_config(ckpt_path: str | Path, overrides: DictConfig | None = None) -> DictConfig:
    """`read_run_config`, with every `_target_` checked against cnnexp's allowlist
    (`cnnexp.trusted_config.check_targets`): the file may come from anyone, and instantiating it must not run code.
    """
    from cnnexp.trusted_config import check_targets

    cfg, source = read_run_config(ckpt_path, overrides)
    check_targets(cfg, source)
    return cfg


def load_weights(model: Any, ckpt_path: str | Path) -> None:
    """Load a Lightning checkpoint's `state_dict` into `model` without unpickling code."""
    from cnnexp.checkpoints import load_checkpoint

    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} does not exist.")
    checkpoint = load_checkpoint(ckpt_path)  # torch.load(weights_only=True) with cnnexp's allowlist
    model.load_state_dict(checkpoint["state_dict"])


def build(cfg: DictConfig, ckpt_path: str | Path | None) -> tuple[Any, Any]:
    """Rebuild `(datamodule, model)` from a run's config and load the checkpoint's weights."""
    import lightning as L
    from hydra.utils import instantiate

    from cnnexp.train import fill_data_shape, quiet_library_output

    quiet_library_output()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    fill_data_shape(cfg, datamodule)
    model = instantiate(cfg.model)
    if ckpt_path is not None:  # None: an exported file runs instead (predict mode)
        load_weights(model, ckpt_path)
    return datamodule, model


def test_checkpoint(cfg: DictConfig, ckpt_path: str | Path) -> dict[str, float]:
    """Test a checkpoint on its data's test split; returns `test/acc`, `test/loss`, ...."""
    from hydra.utils import instantiate

    datamodule, model = build(cfg, ckpt_path)
    # One process, no loggers, no callbacks: the trainer only runs the test loop.
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], devices=1, num_nodes=1, strategy="auto",
                          default_root_dir=str(run_dir_of(ckpt_path)), enable_checkpointing=False)
    results = trainer.test(model, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in results[0].items()}


def predict_files(cfg: DictConfig, ckpt_path: str | Path, files: Sequence[str]) -> list[tuple[str, str, float]]:
    """Classify image files: `[(path, class name, probability)]`, decoding each one like the data module.

    Shape:
        - each image is decoded to the model's `(C, H, W)` (grayscale / RGB / RGBA by C, bilinear resize),
          values 0..255, and batched as `(N, C, H, W)`.
    """
    import torch

    from cnnexp.data.image_decode import BadImage, load_image

    from cnnexp.export import EXPORTED_SUFFIXES, load_exported

    exported = Path(ckpt_path).suffix in EXPORTED_SUFFIXES  # a .pt2 / .onnx file that cnnexp.export wrote
    datamodule, model = build(cfg, ckpt_path) if not exported else build(cfg, None)
    channels, height, width = datamodule.input_shape
    images = []
    for path in files:
        if not Path(path).is_file():
            raise DataError(f"{path}: no such image file.")
        try:
            images.append(load_image(str(path), (height, width), COLOR_MODES[channels]))
        except BadImage as error:
            raise DataError(f"cannot decode {error}") from None
    x = torch.stack(images).float()  # (N, C, H, W), 0..255
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(load_exported(ckpt_path)(x), dim=1) if exported else model.predict_step(x, 0)  # (N, K)
    best, index = probs.max(dim=1)
    names = list(datamodule.class_names)
    return [(str(path), names[i], float(p)) for path, i, p in zip(files, index.tolist(), best.tolist())]


def main(argv: Sequence[str] | None = None) -> dict[str, float] | list[tuple[str, str, float]]:
    """The command line: test (default) or predict; prints the result and returns it."""
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(f"{__doc__.strip()}\n\n{USAGE}")
        return {}
    cli, overrides = parse_args(argv)
    files = cli.get("predict") or cli.get("files")
    mode = cli.get("mode") or ("predict" if files else "test")
    if mode not in ("test", "predict"):
        raise ConfigError(f"mode={mode} is invalid: choose test or predict.")
    cfg = load_run_config(cli.ckpt_path, overrides)
    if mode == "predict":
        if not files:
            raise ConfigError("mode=predict needs the images: predict=[img1.png,img2.jpg].")
        files = list(files) if isinstance(files, (list, ListConfig)) else [str(files)]
        results = predict_files(cfg, cli.ckpt_path, files)
        for path, name, prob in results:
            print(f"{path}: {name} ({prob:.4f})")
        return results
    metrics = test_checkpoint(cfg, cli.ckpt_path)
    print(f"test/acc={metrics['test/acc']:.4f}  ckpt: {cli.ckpt_path}", flush=True)
    return metrics


if __name__ == "__main__":
    run_cli(main)
