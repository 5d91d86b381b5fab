"""SpawnedDDPStrategy: a spawned rank that finished its stage closes its process group; one that failed does not
wait for its peers (the two-process run itself is tests/test_train.py::test_ddp_sim_two_gloo_processes)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from lightning.pytorch import LightningModule
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.trainer.states import TrainerFn, TrainerState, TrainerStatus

from cnnexp.lit.spawned_ddp import SpawnedDDPStrategy


@pytest.fixture
def one_rank_group():
    """A real gloo process group of one rank (its own in-memory store), torn down after the test."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def strategy_after(status: TrainerStatus, start_method: str = "spawn") -> SpawnedDDPStrategy:
    module = LightningModule()
    module.layer = torch.nn.Linear(2, 2)
    module._trainer = type("Trainer", (), {"state": TrainerState(fn=TrainerFn.TESTING, status=status)})()
    strategy = SpawnedDDPStrategy(accelerator=CPUAccelerator(), start_method=start_method,
                                  process_group_backend="gloo", cluster_environment=LightningEnvironment())
    strategy._lightning_module = strategy.model = module
    return strategy


def test_a_spawned_rank_that_finished_closes_its_group(one_rank_group):
    strategy_after(TrainerStatus.RUNNING).teardown()  # RUNNING: Lightning's normal end of a stage
    assert not dist.is_initialized()


@pytest.mark.parametrize("status, start_method", [(TrainerStatus.INTERRUPTED, "spawn"),  # failed: no barrier
                                                  (TrainerStatus.RUNNING, "popen")])  # torchrun: group kept
def test_the_group_stays_after_an_error_or_without_spawn(one_rank_group, status, start_method):
    strategy_after(status, start_method).teardown()
    assert dist.is_initialized()
