"""Keras 3 weight import: the h5 layout written by hand (no keras needed), and real Keras files when installed."""

from __future__ import annotations

import json
import os
import zipfile

import h5py
import numpy as np
import pytest
import torch

from cnnexp.errors import ConfigError, DataError, ShapeError
from cnnexp.layers import Conv2D, Dense, Flatten, MaxPool2D, Rescaling
from cnnexp.models import KerasSequential, load_keras_weights


def small_model() -> KerasSequential:
    layers = [Rescaling(1 / 255), Conv2D(3, 3, padding="same", activation="relu"), MaxPool2D(),
              Conv2D(4, (2, 3)), Flatten(), Dense(6, activation="relu"), Dense(None)]
    return KerasSequential(layers, (2, 8, 8), 3)


def keras_layout_weights(seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Random weights for small_model() in Keras's layout: kernels (kH, kW, C_in, C_out) and (in, out)."""
    rng = np.random.default_rng(seed)
    shapes = {"conv2d": [(3, 3, 2, 3), (3,)], "conv2d_1": [(2, 3, 3, 4), (4,)],
              "dense": [(3 * 2 * 4, 6), (6,)], "dense_1": [(6, 3), (3,)]}  # flatten: (H=3, W=2, C=4)
    return {k: [rng.normal(size=s).astype(np.float32) for s in v] for k, v in shapes.items()}


def write_keras_h5(target, weights: dict[str, list[np.ndarray]], weightless=("rescaling", "max_pooling2d", "flatten")):
    """Write Keras 3's .weights.h5 layout: layers/<name>/vars/<i>, an empty vars group for weightless layers."""
    with h5py.File(target, "w") as f:
        for name in weightless:
            f.create_group(f"layers/{name}/vars")
        for name, arrays in weights.items():
            for i, a in enumerate(arrays):
                f.create_dataset(f"layers/{name}/vars/{i}", data=a)
        f.create_group("vars")


def keras_forward(x: np.ndarray, w: dict[str, list[np.ndarray]]) -> np.ndarray:
    """small_model() computed the Keras way, on channels-last (N, H, W, C) data."""

    def conv(x, kernel, bias, pad):  # stride 1; pad = (top, bottom, left, right)
        x = np.pad(x, ((0, 0), pad[:2], pad[2:], (0, 0)))
        kh, kw = kernel.shape[:2]
        h, wd = x.shape[1] - kh + 1, x.shape[2] - kw + 1
        out = sum(x[:, i:i + h, j:j + wd, :] @ kernel[i, j] for i in range(kh) for j in range(kw))
        return out + bias

    x = x / 255.0
    x = np.maximum(conv(x, *w["conv2d"], (1, 1, 1, 1)), 0)  # (N, 8, 8, 3)
    n, h, wd, c = x.shape
    x = x.reshape(n, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))  # (N, 4, 4, 3)
    x = conv(x, *w["conv2d_1"], (0, 0, 0, 0))  # (N, 3, 2, 4)
    x = x.reshape(n, -1)  # Keras's Flatten of (H, W, C)
    x = np.maximum(x @ w["dense"][0] + w["dense"][1], 0)
    return x @ w["dense_1"][0] + w["dense_1"][1]


def write_archive(path, weights) -> None:
    h5_path = path.with_suffix(".tmp.h5")
    write_keras_h5(h5_path, weights)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        zf.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        zf.write(h5_path, "model.weights.h5")


@pytest.mark.parametrize("fmt", ["weights.h5", "keras"])
def test_hand_written_keras_layout_loads_and_gives_keras_logits(tmp_path, fmt):
    weights = keras_layout_weights()
    path = tmp_path / f"model.{fmt}"
    write_keras_h5(path, weights) if fmt == "weights.h5" else write_archive(path, weights)
    net = small_model()
    load_keras_weights(net, path)
    np.testing.assert_array_equal(net.layers[1].weight.detach().numpy(), weights["conv2d"][0].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(net.layers[5].weight.detach().numpy(), weights["dense"][0].T)
    x = np.random.default_rng(1).uniform(0, 255, (3, 8, 8, 2)).astype(np.float32)  # (N, H, W, C)
    logits = net(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(logits, keras_forward(x.astype(np.float64), weights), atol=1e-4, rtol=1e-4)


def _corrupt(weights, name, index, shape):
    weights[name][index] = np.zeros(shape, np.float32)
    return weights


# (writes a bad file at path, error class, text in the message)
BAD_FILES = [
    (lambda p: None, DataError, "does not exist"),
    (lambda p: p.write_text("not hdf5"), DataError, "not an HDF5 file"),
    (lambda p: h5py.File(p, "w").close(), DataError, "no 'layers' group"),
    (lambda p: zipfile.ZipFile(p, "w").writestr("config.json", "{}"), DataError, "without model.weights.h5"),
    (lambda p: write_keras_h5(p, {**keras_layout_weights(), "dense_2": [np.zeros((3, 3), np.float32)]}),
     ConfigError, "dense_2"),
    (lambda p: write_keras_h5(p, {k: v for k, v in keras_layout_weights().items() if k != "conv2d_1"}),
     ConfigError, "conv2d_1"),
    (lambda p: write_keras_h5(p, _corrupt(keras_layout_weights(), "conv2d_1", 0, (3, 3, 3, 4))),
     ShapeError, "conv2d_1 (Conv2D)"),
    (lambda p: write_keras_h5(p, _corrupt(keras_layout_weights(), "dense_1", 1, (5,))), ShapeError, "(5,)"),
]


@pytest.mark.parametrize("write, error, needle", BAD_FILES)
def test_bad_or_mismatched_files_raise_clear_errors_and_change_nothing(tmp_path, write, error, needle):
    path = tmp_path / "bad.weights.h5"
    write(path)
    net = small_model()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(error) as err:
        load_keras_weights(net, path)
    assert needle in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # keras 3 installs without TensorFlow on this backend
    return pytest.importorskip("keras")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras internals on numpy 2
def test_real_keras_files_load_into_the_keras_cnn_config_model(tmp_path, keras):
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    L = keras.layers
    keras.utils.set_random_seed(0)
    km = keras.Sequential([keras.Input((32, 32, 3)), L.Rescaling(1.0 / 255),
                           L.Conv2D(16, 3, padding="same", activation="relu", name="first"), L.MaxPooling2D(),
                           L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                           L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                           L.Flatten(), L.Dense(128, activation="relu"), L.Dense(5, name="logits")])
    km.layers[-1].bias.assign(np.linspace(-1, 1, 5))  # non-zero biases, so they are checked too
    km.save_weights(tmp_path / "lecture.weights.h5")
    km.save(tmp_path / "lecture.keras")
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)  # (N, H, W, C)
    expected = np.asarray(km.predict(x, verbose=0))

    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose(config_name=None, overrides=["+model=keras_cnn"]).model
    cfg.net.input_shape, cfg.net.num_classes = [3, 32, 32], 5
    for name in ("lecture.weights.h5", "lecture.keras"):
        net = instantiate(cfg.net).eval()
        load_keras_weights(net, tmp_path / name)
        logits = net(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


# Keras layer specs that exercise the padding rules: (cnnexp.layers name, keras.layers name, shared kwargs).
# Both libraries take the same argument names, so one table builds both models.
TRICKY_SPEC = [
    ("Rescaling", "Rescaling", dict(scale=1 / 127.5, offset=-1.0)),
    ("Conv2D", "Conv2D", dict(filters=4, kernel_size=(2, 4), strides=2, padding="same", activation="elu")),
    ("MaxPool2D", "MaxPooling2D", dict(pool_size=3, strides=2, padding="same")),  # odd size: -inf padding
    ("Conv2D", "Conv2D", dict(filters=3, kernel_size=3, dilation_rate=2, padding="same", activation="gelu")),
    ("Conv2D", "Conv2D", dict(filters=5, kernel_size=(1, 2), strides=(1, 2), use_bias=False)),
    ("MaxPool2D", "MaxPooling2D", dict(pool_size=(2, 1))),
    ("Flatten", "Flatten", {}),
    ("Dense", "Dense", dict(units=7, activation="leaky_relu")),  # Keras 3's slope 0.2
    ("Dense", "Dense", dict(units=4)),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras internals on numpy 2
def test_keras_parity_for_strided_same_padding_dilation_and_activations(tmp_path, keras):
    import cnnexp.layers as cl

    keras.utils.set_random_seed(1)
    h, w, c = 15, 13, 2
    km = keras.Sequential([keras.Input((h, w, c))] + [getattr(keras.layers, k)(**kw) for _, k, kw in TRICKY_SPEC])
    for layer in km.layers:  # non-zero biases, so their import is checked too
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.random.default_rng(2).normal(size=tuple(layer.bias.shape)))
    km.save_weights(tmp_path / "tricky.weights.h5")
    x = np.random.default_rng(3).uniform(0, 255, (3, h, w, c)).astype(np.float32)  # (N, H, W, C)
    expected = np.asarray(km.predict(x, verbose=0))

    ours = [getattr(cl, name)(**kw) for name, _, kw in TRICKY_SPEC]
    ours[-1].units = None  # the output layer: sized from num_classes
    net = KerasSequential(ours, (c, h, w), 4).eval()
    load_keras_weights(net, tmp_path / "tricky.weights.h5")
    assert [tuple(m.output_shape) for m in net.layers[1:6]] == [
        tuple(np.roll(layer.output.shape[1:], 1)) for layer in km.layers[1:6]]  # same shapes, channels-first
    logits = net(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


# The layers a CNN course adds after the lecture's: each spec is one Sequential on both sides.
NEW_LAYER_SPECS = {
    "bn-depthwise-separable-avg-gap": [
        ("Conv2D", "Conv2D", dict(filters=4, kernel_size=3, padding="same", use_bias=False)),
        ("BatchNormalization", "BatchNormalization", dict(momentum=0.9, epsilon=1e-3)),
        ("DepthwiseConv2D", "DepthwiseConv2D",
         dict(kernel_size=3, strides=2, padding="same", depth_multiplier=2, activation="relu")),
        ("SeparableConv2D", "SeparableConv2D",
         dict(filters=5, kernel_size=(3, 2), padding="same", depth_multiplier=2, dilation_rate=2)),
        ("BatchNormalization", "BatchNormalization", dict(center=False)),
        # 'same' with even padding: the border is left out of the mean. (With an odd total, Keras's torch backend
        # pads with edge copies and averages them, unlike TensorFlow and cnnexp: docs/functional.md.)
        ("AveragePooling2D", "AveragePooling2D", dict(pool_size=3, strides=1, padding="same")),
        ("GlobalAveragePooling2D", "GlobalAveragePooling2D", {}),
        ("Dense", "Dense", dict(units=4)),
    ],
    "avg-valid-gmp-keepdims": [
        ("SeparableConv2D", "SeparableConv2D", dict(filters=6, kernel_size=3, strides=2, use_bias=False)),
        ("BatchNormalization", "BatchNormalization", dict(scale=False, epsilon=0.01)),
        ("AveragePooling2D", "AveragePooling2D", dict(pool_size=(2, 1))),
        ("Conv2D", "Conv2D", dict(filters=4, kernel_size=2, groups=2, padding="same")),  # grouped
        ("DepthwiseConv2D", "DepthwiseConv2D", dict(kernel_size=(1, 2), use_bias=False)),
        ("GlobalMaxPooling2D", "GlobalMaxPooling2D", dict(keepdims=True)),
        ("Flatten", "Flatten", {}),
        ("Dense", "Dense", dict(units=4)),
    ],
}


def _keras_and_ours(keras, spec, h=15, w=13, c=3, seed=4):
    """The Keras model of `spec` with random non-default weights (BatchNormalization's moving statistics too),
    saved, and the cnnexp model with the file loaded."""
    import cnnexp.layers as cl

    keras.utils.set_random_seed(seed)
    km = keras.Sequential([keras.Input((h, w, c))] + [getattr(keras.layers, k)(**kw) for _, k, kw in spec])
    rng = np.random.default_rng(seed)
    for layer in km.layers:
        for v in layer.weights:
            if any(s in v.path for s in ("bias", "beta", "gamma", "moving_mean")):
                v.assign(rng.normal(size=tuple(v.shape)))
            elif "moving_variance" in v.path:
                v.assign(rng.uniform(0.5, 2.0, size=tuple(v.shape)))
    ours = [getattr(cl, name)(**kw) for name, _, kw in spec]
    ours[-1].units = None  # the output layer: sized from num_classes
    return km, KerasSequential(ours, (c, h, w), 4)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras internals on numpy 2
@pytest.mark.parametrize("spec", list(NEW_LAYER_SPECS))
def test_keras_parity_for_batch_norm_depthwise_separable_and_pooling_layers(tmp_path, keras, spec):
    km, net = _keras_and_ours(keras, NEW_LAYER_SPECS[spec])
    km.save_weights(tmp_path / "new.weights.h5")
    load_keras_weights(net, tmp_path / "new.weights.h5")
    net.eval()
    assert net.count_params() == km.count_params()
    assert [tuple(m.output_shape) for m in net.layers] == [
        tuple(np.roll(layer.output.shape[1:], 1)) if len(layer.output.shape) == 4 else tuple(layer.output.shape[1:])
        for layer in km.layers]
    x = np.random.default_rng(5).normal(size=(3, 15, 13, 3)).astype(np.float32)  # (N, H, W, C)
    expected = np.asarray(km.predict(x, verbose=0))
    logits = net(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_batch_normalization_training_step_updates_moving_statistics_as_keras(tmp_path, keras):
    """Keras's momentum convention (torch's is 1 - momentum) and its biased moving variance."""
    spec = NEW_LAYER_SPECS["bn-depthwise-separable-avg-gap"]
    km, net = _keras_and_ours(keras, spec)
    km.save_weights(tmp_path / "new.weights.h5")
    load_keras_weights(net, tmp_path / "new.weights.h5")
    x = np.random.default_rng(6).normal(size=(8, 15, 13, 3)).astype(np.float32)
    expected = np.asarray(km(x, training=True).detach().cpu())  # the torch backend's tensors
    logits = net.train()(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    for ours, theirs in ((net.layers[1], km.layers[1]), (net.layers[4], km.layers[4])):
        np.testing.assert_allclose(ours.moving_mean.numpy(), np.asarray(theirs.moving_mean.numpy()), atol=1e-5)
        np.testing.assert_allclose(ours.moving_variance.numpy(), np.asarray(theirs.moving_variance.numpy()),
                                   atol=1e-5)


def test_batch_normalization_loads_from_a_hand_written_keras_file(tmp_path):
    from cnnexp.layers import BatchNormalization

    net = KerasSequential([Conv2D(2, 1), BatchNormalization(), Flatten(), Dense(None)], (1, 2, 2), 3)
    rng = np.random.default_rng(0)
    weights = {"conv2d": [rng.normal(size=(1, 1, 1, 2)).astype(np.float32), np.zeros(2, np.float32)],
               "batch_normalization": [np.array(v, np.float32) for v in ([2, 3], [0.5, -1], [0.1, 0.2], [4, 9])],
               "dense": [rng.normal(size=(8, 3)).astype(np.float32), np.zeros(3, np.float32)]}
    write_keras_h5(tmp_path / "bn.weights.h5", weights, weightless=("flatten",))
    load_keras_weights(net, tmp_path / "bn.weights.h5")
    bn = net.layers[1]
    assert bn.weight.tolist() == [2, 3] and bn.bias.tolist() == [0.5, -1]
    np.testing.assert_allclose(bn.moving_mean.numpy(), [0.1, 0.2])
    assert bn.moving_variance.tolist() == [4, 9]
