"""cnnexp.evaluate: a checkpoint tested with its run's saved config gives the accuracy training reported;
predict mode classifies image files decoded like the data module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnexp import evaluate
from cnnexp.errors import ConfigError, DataError
from cnnexp.train import train

FAST = ["model=tiny_cnn", "~callbacks.tensorboard_pictures", "~callbacks.rich_progress",
        "trainer.enable_progress_bar=false", "optimizer.lr=0.01", "logger=csv"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, compose):
    """A finished digits run: (metrics, run folder, best checkpoint)."""
    run = tmp_path_factory.mktemp("eval") / "run"
    metrics = train(compose([*FAST, "trainer.max_epochs=3"], run))
    best = next(run.joinpath("checkpoints").glob("epoch_*.ckpt"))
    return metrics, run, best


def test_evaluate_reproduces_the_training_test_accuracy(trained, capsys):
    metrics, _, best = trained
    result = evaluate.main([f"ckpt_path={best}", "trainer.accelerator=cpu"])
    assert result["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert result["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-5)
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"test/acc={metrics['test/acc']:.4f}  ckpt: ")


def test_predict_prints_class_and_probability(trained, tmp_path, capsys):
    from PIL import Image

    _, run, best = trained
    cfg = evaluate.load_run_config(best)
    datamodule, model = evaluate.build(cfg, best)
    datamodule.setup("test")
    x, y = next(iter(datamodule.test_dataloader()))  # (N, 1, 8, 8) in 0..255
    pixels = x[:4].round().clamp(0, 255).to(torch.uint8)  # what a PNG can hold
    files = []
    for i, image in enumerate(pixels):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(image[0].numpy()).save(path)
        files.append(str(path))
    results = evaluate.main([f"ckpt_path={best}", f"predict=[{','.join(files)}]"])
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(pixels.float()), dim=1)  # (4, 10)
    expected = [(f, str(int(k)), float(p)) for f, k, p in zip(files, probs.argmax(1), probs.max(1).values)]
    assert [(f, k) for f, k, _ in results] == [(f, k) for f, k, _ in expected]
    np.testing.assert_allclose([p for *_, p in results], [p for *_, p in expected], rtol=1e-5)
    lines = capsys.readouterr().out.strip().splitlines()[-4:]
    assert lines[0] == f"{files[0]}: {results[0][1]} ({results[0][2]:.4f})"


@pytest.mark.parametrize("argv, error, match", [
    ([], ConfigError, "ckpt_path"),
    (["ckpt_path"], ConfigError, "key=value"),
    (["ckpt_path=/nope/checkpoints/x.ckpt"], ConfigError, "no saved config"),
    (["mode=predict", "ckpt_path=BEST"], ConfigError, "predict="),
    (["mode=nope", "ckpt_path=BEST"], ConfigError, "test or predict"),
    (["ckpt_path=BEST", "predict=[/nope.png]"], DataError, "/nope.png"),
])
def test_user_errors(trained, argv, error, match):
    argv = [arg.replace("BEST", str(trained[2])) for arg in argv]
    with pytest.raises(error, match=match):
        evaluate.main(argv)


def test_corrupt_image_is_a_data_error(trained, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png"):
        evaluate.main([f"ckpt_path={trained[2]}", f"files=[{bad}]", "mode=predict"])
