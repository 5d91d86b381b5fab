"""`python -m cnnexp.export ckpt_path=<checkpoint or run folder> format=onnx|pt2|keras [out=PATH] [batch=4]`.

Loads the run's network without Lightning (`cnnexp.load_model`), writes it in a deployment format, runs the written
file on a batch of random images next to the eager network and prints the largest difference of the logits; the
last line printed is the written file's path. By default the file goes into the run folder, named after the
checkpoint: `<run>/epoch_004.onnx`, `.pt2` or `.weights.h5` (so `cnnexp.evaluate` finds the run's config for it).

- `pt2`: `torch.export` with a dynamic batch size, saved with `torch.export.save`; `torch.export.load(f).module()`
  runs it (the cnnexp ops are registered when cnnexp.functional is imported).
- `onnx`: the dynamo exporter with opset 18, the cnnexp ops translated to the standard ONNX `Conv` and `MaxPool`
  (`onnx_translations`), dynamic batch; checked with onnxruntime. Needs the `export` extra
  (`pip install 'cnnexp[export]'`: onnx, onnxscript, onnxruntime).
- `keras`: a Keras 3 `.weights.h5` file (`save_keras_weights`) that `keras_model.load_weights(f)` loads into the
  lecture's Keras Sequential, or with `out=<name>.keras` a whole Keras model (`save_keras_archive`, needs the
  keras package) that `keras.models.load_model(f)` loads; checked by reading it back into a fresh copy of the
  network.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnexp.errors import ConfigError

FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "keras": ".weights.h5"}
EXPORTED_SUFFIXES = (".onnx", ".pt2")  # what `load_exported` (and `cnnexp.evaluate predict=`) can run
OPSET = 18
USAGE = ("usage: python -m cnnexp.export ckpt_path=<checkpoint or run folder> format=onnx|pt2|keras "
         "[out=PATH] [batch=4]")


def example_batch(net: nn.Module, batch: int = 4, seed: int = 0) -> torch.Tensor:
    """Random images `(batch, C, H, W)` in 0..255 (what the data modules feed) for the net's `input_shape`."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, *net.input_shape, generator=gen) * 255


def _batch_dim() -> dict[int, Any]:
    return {0: torch.export.Dim("batch", min=1)}


def export_program(net: nn.Module, x: torch.Tensor) -> torch.export.ExportedProgram:
    """`torch.export.export(net, (x,))` with a dynamic batch size (the cnnexp ops are opaque nodes)."""
    return torch.export.export(net, (x,), dynamic_shapes=(_batch_dim(),))


def onnx_translations() -> dict[Any, Callable[..., Any]]:
    """The cnnexp custom ops as standard ONNX ops (onnxscript functions for the dynamo exporter).

    ONNX pads are `[top, left, bottom, right]`; cnnexp's are `(top, bottom, left, right)`. ONNX `MaxPool` ignores
    its padding when taking the maximum, which is cnnexp's -inf padding.
    """
    from onnxscript import opset18 as op

    import cnnexp.functional  # noqa: F401 - registers torch.ops.cnnexp

    def conv2d(x, weight, bias, stride, pads, dilation):
        t, b, l, r = pads
        attrs = dict(strides=list(stride), pads=[t, l, b, r], dilations=list(dilation))
        return op.Conv(x, weight, bias, **attrs) if bias is not None else op.Conv(x, weight, **attrs)

    def max_pool2d(x, kernel, stride, pads):
        t, b, l, r = pads
        return op.MaxPool(x, kernel_shape=list(kernel), strides=list(stride), pads=[t, l, b, r])[0]  # (Y, Indices)

    return {torch.ops.cnnexp.conv2d.default: conv2d, torch.ops.cnnexp.max_pool2d.default: max_pool2d}


def _require_onnx() -> None:
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"format=onnx needs onnx, onnxscript and onnxruntime ({err}). "
                          f"Fix: pip install 'cnnexp[export]'") from None


def save_onnx(net: nn.Module, x: torch.Tensor, out: Path) -> None:
    """Write `net` as an ONNX file of standard ops (opset 18), dynamic batch."""
    _require_onnx()
    progress = io.StringIO()  # the exporter prints its steps; shown only when it fails
    # one exporter warning per custom op ("Expected meta_vals to be a sequence"): its outputs are single tensors
    exporter_log = logging.getLogger("torch.onnx._internal.exporter._core")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(progress):
            program = torch.onnx.export(net, (x,), dynamo=True, dynamic_shapes=(_batch_dim(),), opset_version=OPSET,
                                        custom_translation_table=onnx_translations(), verbose=False)
    except Exception:
        print(progress.getvalue(), file=sys.stderr)
        raise
    finally:
        exporter_log.setLevel(level)
    program.save(str(out))


def load_exported(path: str | Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function `images (N, C, H, W) -> logits (N, K)` that runs an exported `.pt2` or `.onnx` file.

    Raises:
        ConfigError: another suffix, or onnxruntime missing for an `.onnx` file.
    """
    path = Path(path)
    if path.suffix == ".pt2":
        import cnnexp.functional  # noqa: F401 - registers the cnnexp ops the program calls

        module = torch.export.load(str(path)).module()
        return lambda x: module(x).detach()
    if path.suffix == ".onnx":
        _require_onnx()
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.detach().float().cpu().numpy()})[0])
    raise ConfigError(f"{path} is not an exported model. Fix: pass a .pt2 or .onnx file that cnnexp.export wrote.")


def write(net: nn.Module, fmt: str, out: Path, x: torch.Tensor) -> float:
    """Write `net` as `fmt` to `out`, run the written file on `x` and return the largest |logit difference|."""
    from cnnexp.models.keras_weights import load_keras_weights, save_keras_archive, save_keras_weights

    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        expected = net(x)
    if fmt == "pt2":
        torch.export.save(export_program(net, x), str(out))
    elif fmt == "onnx":
        save_onnx(net, x, out)
    if fmt == "keras":
        save_keras_archive(net, out) if out.suffix == ".keras" else save_keras_weights(net, out)
        copy = _fresh_copy(net)
        load_keras_weights(copy, out)
        with torch.no_grad():
            got = copy(x)
    else:
        got = load_exported(out)(x)
    return float((got - expected).abs().max())


def _fresh_copy(net: nn.Module) -> nn.Module:
    """The same architecture with different (re-initialised) weights, to prove the file carries them."""
    import copy

    other = copy.deepcopy(net)
    with torch.no_grad():
        for p in other.parameters():
            p.normal_()
    return other.eval()


def default_out(ckpt: Path, fmt: str) -> Path:
    """`<run>/<checkpoint stem><suffix>`, e.g. `<run>/epoch_004.onnx`."""
    from cnnexp.evaluate import run_dir_of

    return run_dir_of(ckpt) / f"{ckpt.stem}{FORMATS[fmt]}"


def export(ckpt_path: str | Path, fmt: str, out: str | Path | None = None, batch: int = 4) -> tuple[Path, float]:
    """Export the network of a checkpoint or run folder; returns `(written file, max |logit difference|)`.

    Raises:
        ConfigError: unknown format, bad batch, no checkpoint or saved config, missing export packages.
    """
    from cnnexp.deploy import find_checkpoint, load_model

    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not one of {sorted(FORMATS)}. Fix: format=onnx, format=pt2 or format=keras")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(f"batch={batch!r} must be a positive integer. Fix: batch=4")
    ckpt = find_checkpoint(ckpt_path)
    net = load_model(ckpt)
    target = Path(out) if out else default_out(ckpt, fmt)
    if fmt == "keras" and not (target.name.endswith(FORMATS["keras"]) or target.suffix == ".keras"):
        raise ConfigError(f"out={target}: Keras 3 reads weights from *.weights.h5 files and models from *.keras "
                          f"archives. Fix: out={target.with_suffix('')}.weights.h5 (or .keras, which needs keras)")
    return target, write(net, fmt, target, example_batch(net, batch))


def main(argv: Sequence[str] | None = None) -> Path:
    """The command line; prints the check and, as its last line, the written file's path."""
    from omegaconf import OmegaConf

    argv = sys.argv[1:] if argv is None else list(argv)
    bad = [arg for arg in argv if "=" not in arg]
    if bad or not argv:
        raise ConfigError(f"expected key=value arguments, got {' '.join(bad) or 'nothing'}. Fix: {USAGE}")
    args = OmegaConf.to_container(OmegaConf.from_dotlist(argv))
    unknown = sorted(set(args) - {"ckpt_path", "format", "out", "batch"})
    if unknown or not args.get("ckpt_path") or not args.get("format"):
        what = f"unknown keys {unknown}" if unknown else "ckpt_path and format are required"
        raise ConfigError(f"{what}. Fix: {USAGE}")
    path, diff = export(str(args["ckpt_path"]), str(args["format"]), args.get("out"), args.get("batch", 4))
    print(f"max |logits - eager logits| = {diff:.3g} on a batch of {args.get('batch', 4)}", flush=True)
    print(path, flush=True)
    return path


if __name__ == "__main__":
    from cnnexp.cli import run_cli

    run_cli(main)
