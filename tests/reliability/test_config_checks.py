"""check_config on composed configs: each bad value gives a ConfigError naming the key and a fix."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from cnnexp.config_checks import check_config, config_problems
from cnnexp.errors import ConfigError

from .compose import compose

# (override, text the message must contain): one row per bad input.
BAD = [
    ("data.batch_size=-1", "data.batch_size=-1"),
    ("data.batch_size=0", "data.batch_size=0"),
    ("data.batch_size=2.5", "data.batch_size=2.5"),
    ("data.batch_size=abc", "data.batch_size='abc'"),
    ("data.num_workers=-2", "data.num_workers=-2"),
    ("optimizer.lr=0", "optimizer.lr=0"),
    ("optimizer.lr=-0.001", "optimizer.lr=-0.001"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("trainer.max_epochs=-5", "trainer.max_epochs=-5"),
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1"),
    ("+trainer.limit_train_batches=1.5", "trainer.limit_train_batches=1.5"),
    ("seed=abc", "seed='abc'"),
    ("seed=1.5", "seed=1.5"),
    ("retain_cpu_memory=maybe", "retain_cpu_memory='maybe'"),
    ("model.conv_impl=fast", "model.conv_impl='fast'"),
    ("model.init=xavier", "model.init='xavier'"),
    ("model.dropout=1.5", "model.dropout=1.5"),
    ("model.net.layers.1.kernel_size=0", "model.net.layers.1.kernel_size=0 (Conv2D)"),
    ("model.net.layers.1.filters=0", "model.net.layers.1.filters=0 (Conv2D)"),
    ("+model.net.layers.1.strides=[1,0]", "model.net.layers.1.strides=[1, 0]"),
    ("model.net.layers.1.padding=full", "model.net.layers.1.padding='full'"),
    ("+model.net.layers.2.pool_size=0", "model.net.layers.2.pool_size=0 (MaxPool2D)"),
]

GOOD = [
    (),
    ("trainer.max_epochs=-1",),
    ("seed=null",),
    ("trainer.gradient_clip_val=0.5", "optimizer.lr=1e-2", "data.batch_size=1"),
    ("model=tiny_cnn", "model.conv_impl=torch", "model.init=torch"),
    ("model.net.layers.1.kernel_size=[3,5]", "model.net.layers.1.padding=1"),
    ("debug=fast_dev_run",),
    ("retain_cpu_memory=false",),
]


@pytest.mark.parametrize(("override", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_value_names_key_and_fix(override: str, expected: str) -> None:
    cfg = compose([override])
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    message = str(info.value)
    assert expected in message
    assert "Fix: e.g." in message and "expected" in message


@pytest.mark.parametrize("overrides", GOOD, ids=[" ".join(g) or "defaults" for g in GOOD])
def test_good_configs_pass(overrides: tuple[str, ...]) -> None:
    check_config(compose(overrides))


def test_choices_are_listed() -> None:
    with pytest.raises(ConfigError, match=r"one of \['custom', 'naive', 'torch'\]"):
        check_config(compose(["model.conv_impl=fast"]))


def test_every_problem_is_reported_at_once() -> None:
    problems = config_problems(compose(["data.batch_size=-1", "optimizer.lr=0", "trainer.max_epochs=0"]))
    assert len(problems) == 3
    with pytest.raises(ConfigError, match="3 config values are invalid"):
        check_config(compose(["data.batch_size=-1", "optimizer.lr=0", "trainer.max_epochs=0"]))


def test_absent_and_unresolvable_keys_are_skipped() -> None:
    cfg = OmegaConf.create({"data": {"batch_size": 8}, "paths": {"output_dir": "${hydra:runtime.output_dir}"},
                            "model": {"net": {"input_shape": "???", "layers": [{"_target_": "x.Flatten"}]}}})
    check_config(cfg)  # no optimizer/trainer keys, a ??? value and a ${hydra:} interpolation: nothing to report


@pytest.mark.parametrize(("override", "key", "copy"), [
    ("seed=-1", "seed=-1", "data.seed"),  # data.seed: ${oc.select:seed,42}
    ("model.dropout=1.5", "model.dropout=1.5", "model.net.layers.7.rate"),  # rate: ${model.dropout}
])
def test_a_value_copied_by_interpolation_is_reported_once(override: str, key: str, copy: str) -> None:
    problems = config_problems(compose([override]))
    assert len(problems) == 1 and problems[0].startswith(key) and copy not in problems[0]
