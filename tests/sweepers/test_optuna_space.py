"""Hydra's sweep syntax (what conf/hparams_search/*.yaml use) as Optuna >= 4 distributions."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from cnnexp.errors import ConfigError
from cnnexp.sweepers.optuna_space import search_space

CASES = [
    ("optimizer.lr=tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
    ("model.dropout=interval(0.0, 0.5)", FloatDistribution(0.0, 0.5)),
    ("trainer.max_epochs=int(interval(5, 20))", IntDistribution(5, 20)),
    ("x=tag(log, int(interval(8, 64)))", IntDistribution(8, 64, log=True)),
    ("data.batch_size=choice(16, 32, 64)", CategoricalDistribution((16, 32, 64))),
    ("model.conv_impl=custom,torch", CategoricalDistribution(("custom", "torch"))),
    ("model.net.layers.1.filters=range(8, 33, 8)", IntDistribution(8, 32, step=8)),  # 33 excluded, like range()
    ("model.net.layers.1.filters=range(8, 32, 8)", IntDistribution(8, 24, step=8)),
    ("a=range(0.0, 1.0, 0.25)", FloatDistribution(0.0, 1.0, step=0.25)),
]


@pytest.mark.parametrize("override,expected", CASES)
def test_each_sweep_becomes_its_distribution(override, expected):
    space, fixed = search_space([override])
    assert list(space.values()) == [expected] and fixed == []


def test_fixed_overrides_pass_through_and_the_command_line_wins():
    space, fixed = search_space(["optimizer.lr=interval(0.1, 0.2)", "seed=7", "+tags=[a,b]", "optimizer.lr=0.5"])
    assert space == {} and fixed == ["seed=7", "+tags=[a,b]", "optimizer.lr=0.5"]
    space, fixed = search_space(["seed=7", "seed=choice(1, 2)"])
    assert space == {"seed": CategoricalDistribution((1, 2))} and fixed == []


def test_the_shipped_search_space_parses():
    from hydra import compose, initialize_config_module

    import cnnexp.conf  # noqa: F401

    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["+hparams_search=digits_optuna"], return_hydra_config=True)
    space, fixed = search_space([f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()])
    assert space == {
        "optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "data.batch_size": CategoricalDistribution((16, 32, 64, 128)),
        "model.net.layers.1.filters": CategoricalDistribution((8, 16, 32)),
        "model.dropout": FloatDistribution(0.0, 0.5),
    } and fixed == []


def test_choices_of_lists_travel_as_override_text():
    space, _ = search_space(["x=choice([1,2],[3])"])
    assert space["x"].choices == ("[1,2]", "[3]")
