"""OptunaPruning in a real Lightning loop: per-epoch reports reach the trial, a pruned trial stops early."""

from __future__ import annotations

import optuna
import pytest

from cnnexp.sweepers.optuna_storage import ENV_STORAGE, ENV_STUDY, ENV_TRIAL, PRUNED_ATTR, open_storage
from cnnexp.sweepers.pruning import OptunaPruning
from tests.reliability.tiny import TinyModule, loaders, trainer


class PruneAfter(optuna.pruners.BasePruner):
    """Prune once the trial has reported `epochs` values."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def prune(self, study, trial) -> bool:
        return len(trial.intermediate_values) >= self.epochs


@pytest.mark.parametrize("prune_after,epochs_run", [(2, 2), (99, 4)])
def test_reports_every_epoch_and_stops_when_pruned(tmp_path, monkeypatch, prune_after, epochs_run):
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(storage=open_storage(url), study_name="s", pruner=PruneAfter(prune_after))
    trial = study.ask()
    for key, value in [(ENV_STORAGE, url), (ENV_STUDY, "s"), (ENV_TRIAL, str(trial.number))]:
        monkeypatch.setenv(key, value)
    train, val = loaders()
    fit = trainer(tmp_path, callbacks=[OptunaPruning("val/loss", PruneAfter(prune_after))], max_epochs=4)
    fit.fit(TinyModule(), train, val)
    frozen = study._storage.get_trial(trial._trial_id)
    assert sorted(frozen.intermediate_values) == list(range(epochs_run))  # one report per epoch, 0-based
    assert fit.current_epoch == epochs_run
    assert (PRUNED_ATTR in frozen.user_attrs) is (prune_after < 4)


def test_does_nothing_outside_a_search(tmp_path, monkeypatch):
    for key in (ENV_STORAGE, ENV_STUDY, ENV_TRIAL):
        monkeypatch.delenv(key, raising=False)
    train, val = loaders()
    fit = trainer(tmp_path, callbacks=[OptunaPruning(monitor="val/loss")], max_epochs=2)
    fit.fit(TinyModule(), train, val)
    assert fit.current_epoch == 2
