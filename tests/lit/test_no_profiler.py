"""NoProfiler: the trainer configs' profiler records nothing, hands out one shared context, yields to a real one."""

from __future__ import annotations

import lightning as L
import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from lightning.pytorch.profilers import SimpleProfiler

from cnnexp.lit.no_profiler import NoProfiler


def trainer_profiler(*overrides: str):
    """The profiler of the Trainer built from the composed `trainer` config."""
    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["trainer.default_root_dir=.", *overrides])
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False, accelerator="cpu", devices=1)
    return trainer.profiler


def test_profile_hands_out_one_context_that_runs_the_block_and_passes_errors():
    profiler = NoProfiler()
    assert profiler.profile("a") is profiler.profile("b")
    ran = []
    with profiler.profile("hook"):
        ran.append(1)
    assert ran == [1]
    with pytest.raises(KeyError), profiler.profile("hook"):
        raise KeyError("not swallowed")
    assert profiler.summary() == ""


@pytest.mark.parametrize(("overrides", "kind"), [((), NoProfiler), (("debug=profiler",), SimpleProfiler),
                                                 (("trainer.profiler=simple",), SimpleProfiler)])
def test_trainer_configs_use_it_unless_a_profiler_is_asked_for(tmp_path, monkeypatch, overrides, kind):
    monkeypatch.chdir(tmp_path)
    profiler = trainer_profiler(*overrides)
    assert type(profiler) is kind
    assert isinstance(profiler, L.pytorch.profilers.Profiler)


def test_a_saved_config_may_build_it():
    """A run folder's config names it (evaluate, rerun and export rebuild the trainer from that file)."""
    from cnnexp.trusted_config import is_allowed

    assert is_allowed("cnnexp.lit.no_profiler.NoProfiler")
