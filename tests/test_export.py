"""A trained run leaves Lightning behind: cnnexp.load_model, ImageClassifier.load_from_checkpoint, and
`python -m cnnexp.export` to torch.export (.pt2), ONNX (standard ops, checked with onnxruntime) and Keras 3 weights,
each giving the checkpoint's logits; `cnnexp.evaluate predict=` runs the exported files too."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import cnnexp
from cnnexp import evaluate, export
from cnnexp.errors import ConfigError
from cnnexp.train import train

FAST = ["model=tiny_cnn", "~callbacks.tensorboard_pictures", "~callbacks.rich_progress", "logger=csv",
        "trainer.enable_progress_bar=false", "optimizer.lr=0.01", "trainer.max_epochs=1",
        "data.image_size=null"]  # the digits' own 8x8 (the default upsamples to 32x32): small exports
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, compose):
    """A finished digits run of the tiny CNN (conv + pool): (run folder, best checkpoint, its ImageClassifier)."""
    run = tmp_path_factory.mktemp("export") / "run"
    train(compose(FAST, run))
    best = next(run.joinpath("checkpoints").glob("epoch_*.ckpt"))
    _, model = evaluate.build(evaluate.load_run_config(best), best)
    return run, best, model.eval()


def digits(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(n)) * 16  # (N, 1, 8, 8), digits' range


def test_load_model_gives_the_checkpoints_network_from_a_file_or_the_run_folder(trained):
    run, best, model = trained
    x = digits()
    for path in (best, run):
        net = cnnexp.load_model(path)
        assert not net.training and type(net).__name__ == "KerasSequential"
        torch.testing.assert_close(net(x), model(x), rtol=0, atol=0)


def test_load_model_imports_no_lightning(trained):
    run, _, _ = trained
    code = (f"import sys, cnnexp; cnnexp.load_model({str(run)!r}); "
            f"print(sorted(m for m in sys.modules if 'lightning' in m))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])})
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]


def test_image_classifier_load_from_checkpoint(trained):
    from cnnexp.lit import ImageClassifier

    run, best, model = trained
    for path in (best, run):
        loaded = ImageClassifier.load_from_checkpoint(path, map_location="cpu").eval()
        torch.testing.assert_close(loaded(digits()), model(digits()), rtol=0, atol=0)


def test_load_model_errors_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="does not exist. Fix:"):
        cnnexp.load_model(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="no checkpoint.*Fix:"):
        cnnexp.load_model(tmp_path)


@pytest.fixture(scope="module")
def exported(trained):
    """`python -m cnnexp.export ckpt_path=<run> format=pt2|onnx`, once each: {fmt: (written path, printed lines)}."""
    run, _, _ = trained
    written = {}
    for fmt in ("pt2", "onnx"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            path = export.main([f"ckpt_path={run}", f"format={fmt}"])
        written[fmt] = path, out.getvalue().strip().splitlines()
    return written


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_export_writes_a_file_that_runs_like_the_checkpoint_at_any_batch_size(trained, exported, fmt):
    run, best, model = trained
    path, lines = exported[fmt]
    assert lines[-1] == str(path) and path == run / f"{best.stem}.{fmt}" and path.is_file()
    assert float(lines[-2].split("=")[1].split()[0]) <= 1e-4
    forward = export.load_exported(path)
    for n in (1, 5):  # the batch size is dynamic
        np.testing.assert_allclose(forward(digits(n)).numpy(), model(digits(n)).detach().numpy(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_onnx_file_holds_standard_ops_only(exported):
    import onnx

    graph = onnx.load(str(exported["onnx"][0]))
    assert {op.domain for op in graph.opset_import} == {""} and graph.opset_import[0].version >= 18
    ops = {node.op_type for node in graph.graph.node}
    assert {"Conv", "MaxPool"} <= ops and all(node.domain == "" for node in graph.graph.node), ops


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras internals on numpy 2
def test_keras_export_loads_into_the_keras_sequential_with_the_same_logits(trained, tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    run, _, model = trained
    path = export.main([f"ckpt_path={run}", "format=keras", f"out={tmp_path / 'digits.weights.h5'}"])
    layers = keras.layers
    km = keras.Sequential([keras.Input((8, 8, 1)), layers.Rescaling(1 / 255),  # the tiny_cnn config, in Keras
                           layers.Conv2D(8, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
                           layers.Flatten(), layers.Dense(10)])
    km.load_weights(path)
    x = digits()
    expected = model(x).detach().numpy()
    np.testing.assert_allclose(np.asarray(km.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)), expected,
                               atol=1e-4, rtol=0)
    archive = export.main([f"ckpt_path={run}", "format=keras", f"out={tmp_path / 'digits.keras'}"])
    loaded = keras.models.load_model(archive)  # the architecture comes from the archive this time
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in km.layers]
    np.testing.assert_allclose(np.asarray(loaded.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)), expected,
                               atol=1e-4, rtol=0)


@pytest.mark.slow
def test_evaluate_predicts_the_same_classes_with_exported_files(trained, exported, tmp_path):
    from PIL import Image

    _, best, _ = trained
    files = []
    for i, image in enumerate(digits(4).round().to(torch.uint8)):
        files.append(str(tmp_path / f"digit{i}.png"))
        Image.fromarray(image[0].numpy()).save(files[-1])
    want = evaluate.main([f"ckpt_path={best}", f"predict=[{','.join(files)}]"])
    for path, _ in exported.values():
        got = evaluate.main([f"ckpt_path={path}", f"predict=[{','.join(files)}]"])
        assert [(f, k) for f, k, _ in got] == [(f, k) for f, k, _ in want]
        np.testing.assert_allclose([p for *_, p in got], [p for *_, p in want], atol=1e-5)


@pytest.mark.parametrize(("argv", "match"), [
    (["format=onnx"], "ckpt_path and format are required"),
    (["ckpt_path=x", "format=tflite"], "format=tflite is not one of"),
    (["ckpt_path=x", "format=pt2", "colour=red"], "unknown keys"),
    (["ckpt_path"], "expected key=value"),
])
def test_export_command_line_errors(argv, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        export.main(argv)


def test_keras_export_refuses_a_name_keras_cannot_load(trained, tmp_path):
    _, best, _ = trained
    with pytest.raises(ConfigError, match=r"\*\.weights\.h5 files.*Fix: out=.*m\.weights\.h5"):
        export.export(best, "keras", tmp_path / "m.h5")


@pytest.mark.slow
def test_onnx_translation_keeps_asymmetric_padding_strides_dilation_and_no_bias(tmp_path):
    """The cnnexp -> ONNX Conv/MaxPool translation on the layers that test Keras parity: 'same' with the odd pixel
    at the bottom/right at stride 2, dilation 2, a bias-free conv, a 3x3 stride-2 'same' pool (-inf padding)."""
    import cnnexp.layers as cl
    from cnnexp.models import KerasSequential
    from tests.models.test_keras_weights import TRICKY_SPEC

    layers = [getattr(cl, name)(**kw) for name, _, kw in TRICKY_SPEC]
    layers[-1].units = None
    torch.manual_seed(0)
    net = KerasSequential(layers, (2, 15, 13), 4).eval()
    export.save_onnx(net, torch.rand(3, 2, 15, 13) * 255, tmp_path / "tricky.onnx")
    forward = export.load_exported(tmp_path / "tricky.onnx")
    for n in (1, 4):
        x = torch.rand(n, 2, 15, 13) * 255
        np.testing.assert_allclose(forward(x).numpy(), net(x).detach().numpy(), atol=1e-4, rtol=0)
