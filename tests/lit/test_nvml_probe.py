"""Lightning's NVML-based GPU count is dropped only where NVML's library cannot be loaded."""

from __future__ import annotations

import os

import pytest
import torch

from cnnexp.lit import nvml_probe


@pytest.mark.parametrize("loadable, dropped", [(False, True), (True, False)])
def test_the_variable_goes_only_when_nvml_cannot_be_loaded(monkeypatch, loadable, dropped):
    monkeypatch.setenv(nvml_probe.NVML_CHECK_ENV, "1")
    monkeypatch.setattr(nvml_probe, "nvml_loadable", lambda: loadable)
    assert nvml_probe.drop_failing_nvml_probe() is dropped
    assert (nvml_probe.NVML_CHECK_ENV in os.environ) is not dropped


def test_an_unset_variable_stays_unset(monkeypatch):
    monkeypatch.delenv(nvml_probe.NVML_CHECK_ENV, raising=False)
    monkeypatch.setattr(nvml_probe, "nvml_loadable", lambda: False)
    assert nvml_probe.drop_failing_nvml_probe() is False


@pytest.mark.skipif(nvml_probe.nvml_loadable(), reason="NVML is installed here: the probe rightly stays")
def test_optimizer_steps_stop_loading_nvml_where_it_is_missing(monkeypatch):
    """With the variable (as `import lightning` leaves it) each Adam step tries to load NVML; after
    `drop_failing_nvml_probe` none does, and CUDA's availability reads the same."""
    loads = []
    real = torch.cuda._raw_device_count_nvml

    def counting():
        loads.append(1)
        return real()

    monkeypatch.setattr(torch.cuda, "_raw_device_count_nvml", counting)
    monkeypatch.setenv(nvml_probe.NVML_CHECK_ENV, "1")
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([weight])
    available_with_probe = torch.cuda.is_available()
    for _ in range(3):
        weight.grad = torch.ones(3)
        optimizer.step()
    assert len(loads) >= 3
    assert nvml_probe.drop_failing_nvml_probe()
    loads.clear()
    for _ in range(3):
        weight.grad = torch.ones(3)
        optimizer.step()
    assert loads == [] and torch.cuda.is_available() == available_with_probe
