"""conf/model/*.yaml compose with Hydra and instantiate `model.net` into the intended networks."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from cnnexp.layers import Dropout
from cnnexp.models import KerasSequential


def compose_model(name: str, *overrides: str):
    """Only the model group (its ${optimizer} / ${scheduler} stay unresolved: net does not use them)."""
    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        return compose(config_name=None, overrides=[f"+model={name}", *overrides]).model


def build_net(name: str, input_shape, num_classes: int, *overrides: str) -> KerasSequential:
    cfg = compose_model(name, *overrides)
    cfg.net.input_shape = list(input_shape)
    cfg.net.num_classes = num_classes
    return instantiate(cfg.net)


# (config, input shape, classes, parameters, dropout rate)
CONFIG_CASES = [
    ("keras_cnn", (3, 180, 180), 5, 3_989_285, 0.0),
    ("keras_cnn_dropout", (3, 180, 180), 5, 3_989_285, 0.2),
    ("keras_cnn", (1, 8, 8), 10, 16 * 9 + 16 + 32 * 144 + 32 + 64 * 288 + 64 + 64 * 128 + 128 + 1290, 0.0),
    ("tiny_cnn", (1, 8, 8), 10, 8 * 9 + 8 + 128 * 10 + 10, None),
    # convs without bias, 4 x C BatchNormalization weights each (Keras counts the moving statistics), GAP head
    ("keras_cnn_bn", (3, 180, 180), 5, 16 * 27 + 64 + 32 * 144 + 128 + 64 * 288 + 256 + 64 * 128 + 128 + 645, 0.0),
    ("keras_cnn_bn", (1, 8, 8), 10, 16 * 9 + 64 + 32 * 144 + 128 + 64 * 288 + 256 + 64 * 128 + 128 + 1290, 0.0),
]


@pytest.mark.parametrize("name, input_shape, num_classes, n_params, rate", CONFIG_CASES)
def test_model_config_builds_the_intended_network(name, input_shape, num_classes, n_params, rate):
    net = build_net(name, input_shape, num_classes)
    assert isinstance(net, KerasSequential)
    assert net.count_params() == n_params
    assert net.conv_impl == "custom" and net.init == "keras"
    rates = [m.rate for m in net.layers if isinstance(m, Dropout)]
    assert rates == ([] if rate is None else [rate])
    assert tuple(net(torch.rand(2, *input_shape) * 255).shape) == (2, num_classes)


def test_model_config_has_the_layout_the_runner_relies_on():
    cfg = compose_model("keras_cnn")
    assert cfg._target_ == "cnnexp.lit.ImageClassifier"
    assert cfg.net._target_ == "cnnexp.models.KerasSequential"
    for key in ("conv_impl", "init", "optimizer", "scheduler", "net"):
        assert key in cfg
    assert cfg.net.layers[-1].units is None  # sized from the data's num_classes


def test_conv_impl_and_init_overrides_reach_every_layer():
    net = build_net("tiny_cnn", (3, 8, 8), 2, "model.conv_impl=torch", "model.init=torch")
    assert net.conv_impl == "torch" and net.layers[1].conv_impl == "torch" and net.init == "torch"
    assert torch.count_nonzero(net.layers[1].bias) > 0
