"""KerasSequential: Keras-style shape inference, the lecture model's 3,989,285 parameters, errors, switches."""

from __future__ import annotations

import pytest
import torch

from cnnexp.errors import ConfigError, ShapeError
from cnnexp.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, Rescaling
from cnnexp.models import KerasSequential, summary


def lecture_layers(dropout: float | None = None) -> list:
    """The lecture's Sequential model, as the keras_cnn config lists it."""
    convs = []
    for filters in (16, 32, 64):
        convs += [Conv2D(filters, 3, padding="same", activation="relu"), MaxPool2D()]
    extra = [Dropout(dropout)] if dropout is not None else []
    return [Rescaling(1 / 255), *convs, *extra, Flatten(), Dense(128, activation="relu"), Dense(None)]


@pytest.fixture(scope="module")
def lecture_model() -> KerasSequential:
    torch.manual_seed(0)
    return KerasSequential(lecture_layers(), (3, 180, 180), 5)


def test_lecture_model_has_the_keras_tutorials_parameter_count(lecture_model):
    assert lecture_model.count_params() == 3_989_285
    assert lecture_model.layers[-2].input_shape == (30976,)  # inferred: nobody types 30976
    assert lecture_model.layers[-1].units == 5


def test_lecture_model_gives_logits_for_a_small_batch(lecture_model):
    x = torch.rand(2, 3, 180, 180) * 255  # (N, C, H, W) in 0..255: Rescaling scales
    y = lecture_model(x)
    assert tuple(y.shape) == (2, 5) and torch.isfinite(y).all()


def test_summary_lists_every_layer_with_shape_and_parameters(lecture_model):
    text = summary(lecture_model)
    assert text == lecture_model.summary()
    expected_rows = [
        ("rescaling (Rescaling)", "(None, 3, 180, 180)", "0"),
        ("conv2d (Conv2D)", "(None, 16, 180, 180)", "448"),
        ("max_pooling2d (MaxPool2D)", "(None, 16, 90, 90)", "0"),
        ("conv2d_1 (Conv2D)", "(None, 32, 90, 90)", "4,640"),
        ("max_pooling2d_1 (MaxPool2D)", "(None, 32, 45, 45)", "0"),
        ("conv2d_2 (Conv2D)", "(None, 64, 45, 45)", "18,496"),
        ("max_pooling2d_2 (MaxPool2D)", "(None, 64, 22, 22)", "0"),
        ("flatten (Flatten)", "(None, 30976)", "0"),
        ("dense (Dense)", "(None, 128)", "3,965,056"),
        ("dense_1 (Dense)", "(None, 5)", "645"),
    ]
    rows = [line.split() for line in text.splitlines()]
    for name, shape, params in expected_rows:
        assert name.split() + shape.split() + [params] in rows, name
    assert "Total params: 3,989,285" in text
    assert "Trainable params: 3,989,285" in text and "Non-trainable params: 0" in text


def test_frozen_parameters_count_as_non_trainable():
    net = KerasSequential([Flatten(), Dense(4), Dense(None)], (2, 2), 3)
    net.layers[1].weight.requires_grad_(False)
    text = net.summary()
    assert "Total params: 35" in text and "Trainable params: 19" in text and "Non-trainable params: 16" in text


def test_four_pools_on_8x8_fail_at_build_naming_the_layer_and_shapes():
    layers = [Conv2D(4, 3, padding="same"), *[MaxPool2D() for _ in range(4)], Flatten(), Dense(None)]
    with pytest.raises(ShapeError) as err:
        KerasSequential(layers, (1, 8, 8), 10)
    msg = str(err.value)
    assert "max_pooling2d_3 (MaxPool2D)" in msg and "(4, 1, 1)" in msg and "2x2" in msg


# (layers factory, input_shape, num_classes, error class, text in the message)
BAD_MODELS = [
    (lambda: [Flatten(), Dense(None)], "???", 3, ConfigError, "input_shape"),
    (lambda: [Flatten(), Dense(None)], None, 3, ConfigError, "train() fills it"),
    (lambda: [Flatten(), Dense(None)], [3, 0, 4], 3, ConfigError, "input_shape"),
    (lambda: [Flatten(), Dense(None)], [1, 4, 4], 0, ConfigError, "num_classes"),
    (lambda: [], [1, 4, 4], 3, ConfigError, "empty"),
    (lambda: [Flatten(), Dense(7)], [1, 4, 4], 3, ShapeError, "Dense(units=null)"),
    (lambda: [Flatten(), Dense(None), torch.nn.ReLU()], [1, 4, 4], 3, ConfigError, "layers[2]"),
    (lambda: [{"filters": 3}], [1, 4, 4], 3, ConfigError, "_target_"),
]


@pytest.mark.parametrize("layers, input_shape, num_classes, error, needle", BAD_MODELS)
def test_bad_model_arguments_raise_clear_errors(layers, input_shape, num_classes, error, needle):
    with pytest.raises(error) as err:
        KerasSequential(layers(), input_shape, num_classes)
    assert needle in str(err.value)


def test_bad_init_and_conv_impl_raise_config_error():
    with pytest.raises(ConfigError, match="init"):
        KerasSequential([Flatten(), Dense(None)], (1, 2, 2), 2, init="xavier")
    with pytest.raises(ConfigError, match="conv_impl"):
        KerasSequential([Flatten(), Dense(None)], (1, 2, 2), 2, conv_impl="cudnn")


def test_target_mappings_are_instantiated():
    layers = [{"_target_": "cnnexp.layers.Conv2D", "filters": 2, "kernel_size": 3},
              {"_target_": "cnnexp.layers.Flatten"}, {"_target_": "cnnexp.layers.Dense", "units": None}]
    net = KerasSequential(layers, [1, 5, 5], 4)
    assert [type(m).__name__ for m in net.layers] == ["Conv2D", "Flatten", "Dense"]
    assert net.count_params() == 2 * 9 + 2 + 18 * 4 + 4


def test_conv_impl_and_init_apply_to_every_layer():
    torch.manual_seed(0)
    net = KerasSequential(lecture_layers(), (3, 8, 8), 3, conv_impl="naive", init="torch")
    convs = [m for m in net.layers if isinstance(m, Conv2D)]
    assert [c.conv_impl for c in convs] == ["naive"] * 3
    assert all(torch.count_nonzero(m.bias) > 0 for m in net.layers if isinstance(m, (Conv2D, Dense)))
    x = torch.rand(2, 3, 8, 8) * 255
    y_naive = net(x)
    net.conv_impl = "torch"
    assert [c.conv_impl for c in convs] == ["torch"] * 3
    torch.testing.assert_close(net(x), y_naive, rtol=1e-4, atol=1e-5)
    net.reset_parameters("keras")
    assert all(torch.count_nonzero(m.bias) == 0 for m in net.layers if isinstance(m, (Conv2D, Dense)))


def test_dropout_drops_in_training_only_and_adds_no_parameters():
    torch.manual_seed(0)
    net = KerasSequential(lecture_layers(dropout=0.5), (3, 16, 16), 5)
    assert "dropout (Dropout)" in net.summary() and net.count_params() == KerasSequential(
        lecture_layers(), (3, 16, 16), 5).count_params()
    x = torch.rand(2, 3, 16, 16) * 255
    without_dropout = x
    for layer in net.layers:
        without_dropout = without_dropout if isinstance(layer, Dropout) else layer(without_dropout)
    torch.testing.assert_close(net.eval()(x), without_dropout)
    assert not torch.allclose(net.train()(x), without_dropout)


def test_forward_with_the_wrong_input_shape_names_both_shapes():
    net = KerasSequential([Flatten(), Dense(None)], (1, 4, 4), 2)
    with pytest.raises(ShapeError, match=r"\(N, 1, 4, 4\).*\(2, 1, 5, 5\)"):
        net(torch.zeros(2, 1, 5, 5))


def test_state_dict_round_trip_rebuilds_the_same_network():
    a = KerasSequential(lecture_layers(), (3, 16, 16), 4)
    b = KerasSequential(lecture_layers(), (3, 16, 16), 4, init="torch")
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(a(x), b(x))
    assert "layers.1.weight" in a.state_dict() and "layers.9.bias" in a.state_dict()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("impl", ["custom", "naive"])
def test_lecture_model_on_cuda_matches_the_torch_conv(monkeypatch, impl):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare exact float32 math
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    net = KerasSequential(lecture_layers(), (3, 16, 16), 5, init="torch").cuda()
    x = torch.rand(4, 3, 16, 16, device="cuda") * 255
    outputs = {}
    for name in (impl, "torch"):
        net.conv_impl = name
        net.zero_grad()
        y = net(x)
        y.square().sum().backward()
        outputs[name] = (y.detach(), net.layers[1].weight.grad.clone())
    for got, want in zip(outputs[impl], outputs["torch"]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
